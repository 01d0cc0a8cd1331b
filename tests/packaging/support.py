"""Build the wheel the way the Dockerfile does, and make fresh venvs outside the checkout.

The build context is what the Dockerfile copies (`BUILD_CONTEXT`), built with the Dockerfile's
own command (`WHEEL_BUILD`), so the wheel CI tests is the wheel the image installs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "runtime_worker", "shared")
BUILD_CONTEXT = ("pyproject.toml", "README.md", *PACKAGES)
# `python -m pip wheel --no-deps --wheel-dir DIR SRC`: pip's isolated build with the
# build-system requirements from pyproject.toml. The Dockerfile runs the same.
WHEEL_BUILD = ("pip", "wheel", "--no-deps", "--wheel-dir")
CONSTRAINTS = ROOT / "constraints.txt"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def run(
    argv: list[str],
    *,
    timeout_s: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; fail with its output when it fails (no silent half-install)."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=cwd, env=env
    )
    assert done.returncode == 0, (
        f"{argv[:4]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def copy_build_context(dest: Path) -> Path:
    """The files the Dockerfile copies into its build stage, and nothing else."""
    dest.mkdir(parents=True)
    for name in BUILD_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_IGNORED)
        else:
            shutil.copy2(source, dest / name)
    return dest


def build_wheel(src: Path, out: Path) -> Path:
    run([sys.executable, "-m", *WHEEL_BUILD, str(out), str(src)], timeout_s=300)
    (wheel,) = out.glob("yoi_fleet-*.whl")
    return wheel


def uv() -> str:
    """The uv binary of the dev venv (uv is a dev dependency)."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def fresh_venv(path: Path) -> Path:
    """A new venv (not the dev venv) on this interpreter; answers its python."""
    run([uv(), "venv", "--quiet", "--python", sys.executable, str(path)], timeout_s=120)
    return path / "bin" / "python"


def clean_env(venv_python: Path) -> dict[str, str]:
    """The environment of a user of that venv: none of the dev venv, the checkout or YOI_*."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("YOI_", "PYTEST_", "PYTHON", "VIRTUAL_ENV"))
        and key not in {"REDIS_URL", "OPENAI_API_KEY"}
    }
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_python.parent.parent)
    return env


def floors() -> dict[str, str]:
    """Distribution name → the lower bound pyproject.toml gives it (every direct requirement)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, str] = {}
    for extra, requirements in {
        "": project["dependencies"],
        **project["optional-dependencies"],
    }.items():
        for requirement in requirements:
            match = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*([^;]*)", requirement)
            assert match, requirement
            name, specifier = canonical(match.group(1)), match.group(3).strip()
            if name == "yoi-fleet":  # the dev extra pulls in another extra of ours
                continue
            bound = re.fullmatch(r">=\s*([0-9][0-9A-Za-z.]*)(\s*,\s*<[^,]+)?", specifier)
            assert bound, f"{requirement!r} ({extra or 'dependencies'}) has no `>=` lower bound"
            found[name] = bound.group(1)
    return found


def build_floor() -> tuple[str, str]:
    """The build backend's requirement and its lower bound (`setuptools>=N`)."""
    (requirement,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"][
        "requires"
    ]
    match = re.fullmatch(r"([A-Za-z0-9._-]+)>=([0-9.]+)", requirement)
    assert match, requirement
    return match.group(1), match.group(2)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a: str, b: str) -> bool:
    """`2.7` and `2.7.0` are one version (trailing zero release parts do not count)."""

    def parts(version: str) -> list[str]:
        pieces = version.split(".")
        while len(pieces) > 1 and pieces[-1] == "0":
            pieces.pop()
        return pieces

    return parts(a) == parts(b)
