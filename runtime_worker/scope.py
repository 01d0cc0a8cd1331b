"""Scope paths as pure functions, shared by every Store: overlap and delegation coverage.

Paths compare on whole segments, so `/repo/a` contains `/repo/a/b` but not `/repo/ab`; a
trailing slash means nothing (`/repo/a/` is `/repo/a`), and `/` contains every path.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.models import ScopeEntry, ScopeMode


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def contains(outer: str, inner: str) -> bool:
    """`inner` is `outer` or lies below it, on a segment boundary."""
    outer_parts, inner_parts = _segments(outer), _segments(inner)
    return inner_parts[: len(outer_parts)] == outer_parts


def paths_overlap(a: str, b: str) -> bool:
    """Equal paths, or one is an ancestor of the other."""
    return contains(a, b) or contains(b, a)


def overlaps(a: ScopeEntry, b: ScopeEntry) -> bool:
    """Two claims conflict only when both write and their paths overlap."""
    return a.mode is ScopeMode.WRITE and b.mode is ScopeMode.WRITE and paths_overlap(a.path, b.path)


def covers(parent: Sequence[ScopeEntry], child: Sequence[ScopeEntry]) -> bool:
    """A delegated child may hold only what its parent holds: each child entry lies under some
    parent entry, and a child write needs a parent write there."""
    return all(
        any(
            contains(p.path, c.path) and (c.mode is ScopeMode.READ or p.mode is ScopeMode.WRITE)
            for p in parent
        )
        for c in child
    )


def conflicts(mine: Sequence[ScopeEntry], theirs: Sequence[ScopeEntry]) -> bool:
    """Any write overlap between two claim sets."""
    return any(overlaps(a, b) for a in mine for b in theirs)
