"""The built wheel, once per test run, and a fresh venv with it installed (outside the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.support import (
    CONSTRAINTS,
    build_wheel,
    copy_build_context,
    fresh_venv,
    run,
    uv,
)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the Dockerfile's build context, with the Dockerfile's command."""
    work = tmp_path_factory.mktemp("wheel")
    return build_wheel(copy_build_context(work / "src"), work / "dist")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Path:
    """A fresh venv holding the wheel and its dependencies at CI's pins; answers its python."""
    python = fresh_venv(tmp_path_factory.mktemp("venv") / "venv")
    argv = [uv(), "pip", "install", "--quiet", "--python", str(python), "-c", str(CONSTRAINTS)]
    run([*argv, str(built_wheel)], timeout_s=300)
    return python
