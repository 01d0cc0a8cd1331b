"""`yoi`, the command line of Yoi Fleet: one module per command group, `app` wires them."""

from gateway.cli.app import app, main

__all__ = ["app", "main"]
