"""Measuring clients: the same code drives Yoi and its peers."""

__all__: list[str] = []
