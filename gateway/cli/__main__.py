"""`python -m gateway.cli`: the `yoi` console script without an installed entry point."""

from gateway.cli.app import main

main()
