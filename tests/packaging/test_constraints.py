"""constraints.txt records the versions CI runs: `./run` installs with it, `./run lock` pins."""

from __future__ import annotations

import re
from importlib import metadata

from tests.packaging.support import CONSTRAINTS, canonical, floors


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", line.strip())
            assert match, f"constraints.txt: {line!r} is not a `name==version` pin"
            found[canonical(match.group(1))] = match.group(2)
    return found


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


def test_every_direct_requirement_is_pinned_at_or_above_its_floor() -> None:
    pinned = pins()
    for name, floor in floors().items():
        assert name in pinned, f"{name} is not in constraints.txt: run ./run lock"
        assert release(pinned[name]) >= release(floor), (name, pinned[name], floor)


def test_the_file_says_how_to_regenerate_it() -> None:
    assert "./run lock" in "".join(CONSTRAINTS.read_text().splitlines(keepends=True)[:3])


def test_this_venv_runs_the_pinned_versions() -> None:
    """What this suite runs on is what the file says (./run installs with `-c constraints.txt`)."""
    pinned = pins()
    for name in floors():
        assert metadata.version(name) == pinned[name], f"{name}: re-run ./run (or ./run lock)"
