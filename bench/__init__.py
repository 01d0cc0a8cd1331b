"""Yoi Fleet benchmarks (issue 7): each scenario measures Yoi beside a ceiling or peer run on
the same machine in the same run, and reports ratios against targets. Run `python -m bench`."""

__all__: list[str] = []
