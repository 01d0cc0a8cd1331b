"""Ceilings and peers measured beside Yoi in the same run: each is the least code that does
the same job, so the ratio shows what Yoi's design costs on top of the bare mechanism."""

__all__: list[str] = []
