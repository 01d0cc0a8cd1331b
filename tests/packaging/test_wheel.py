"""The wheel is the product: everything the code loads is in it, and an install of it in a fresh
venv, used from a folder outside the checkout, runs the README's commands and example."""

from __future__ import annotations

import contextlib
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until_sync
from tests.packaging.support import PACKAGES, ROOT, clean_env, run
from tests.redis_server import private_redis

pytestmark = pytest.mark.slow

MARKER = "wheel smoke 7f3a"  # text the echo provider must hand back verbatim


def source_files() -> set[str]:
    """Every file of our packages in the checkout (Python and resources), as wheel paths."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_wheel_holds_every_file_of_the_packages_and_nothing_else(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as wheel:
        names = {name for name in wheel.namelist() if not name.endswith("/")}
    ours = {name for name in names if not name.split("/")[0].endswith(".dist-info")}
    missing = source_files() - ours
    assert not missing, f"not in the wheel (add to [tool.setuptools.package-data]): {missing}"
    assert ours == source_files(), f"in the wheel but not in the packages: {ours - source_files()}"
    for resource in (
        "runtime_worker/resources/profiles/companion.toml",
        "gateway/static/index.html",
    ):
        assert resource in ours


def readme_example() -> str:
    """The README's embedded-runtime example, taken from README.md so that it cannot drift."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (example,) = [block for block in blocks if "Runtime.embedded" in block]
    return str(example)


@contextlib.contextmanager
def process(
    argv: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A `yoi` process logging to `log`, stopped with SIGTERM (then killed) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def ready(gateway: str, *procs: subprocess.Popen[bytes]) -> bool:
    for proc in procs:  # one that died will not become ready: say so now
        assert proc.poll() is None, f"{proc.args!r} exited {proc.returncode}"
    try:
        return httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def yoi(venv_bin: Path, args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = run([str(venv_bin / "yoi"), *args], timeout_s=60, cwd=cwd, env=env)
    return done.stdout


def test_the_installed_wheel_runs_the_readme_outside_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    venv_bin = installed.parent
    env = clean_env(installed)
    imports = "import gateway, runtime_worker, shared\nfor m in (gateway, runtime_worker, shared):"
    imports += " print(m.__file__)"
    where = run([str(installed), "-c", imports], timeout_s=60, cwd=tmp_path, env=env).stdout
    files = where.split()
    assert len(files) == 3 and all(f.startswith(str(installed.parent.parent)) for f in files), where

    with private_redis() as redis_url:
        port = free_port()
        gateway = f"http://127.0.0.1:{port}"
        env_cli = {**env, "YOI_GATEWAY": gateway}
        serve = [str(venv_bin / "yoi"), "gateway", "--host", "127.0.0.1", "--port", str(port)]
        serve += ["--redis-url", redis_url, "--fleet", "fleet"]
        member = [str(venv_bin / "yoi"), "runtime", "--redis-url", redis_url]
        member += ["--runtime-id", "fleet", "--capacity", "10"]
        with (
            process(serve, tmp_path, env, tmp_path / "gateway.log") as gateway_proc,
            process(member, tmp_path, env, tmp_path / "runtime.log") as runtime_proc,
        ):
            try:
                # Ready: the embedded runtime answers and the fleet has its member.
                wait_until_sync(
                    lambda: ready(gateway, gateway_proc, runtime_proc),
                    timeout_s=30,
                    what="a ready gateway",
                )
                answer = yoi(
                    venv_bin, ["send", "companion@backend-internal", MARKER], tmp_path, env_cli
                )
                assert MARKER in answer
                created = yoi(venv_bin, ["create", "fleet", "bob"], tmp_path, env_cli)
                worker_ref = re.search(r"fleet/\S+", created)
                assert worker_ref, created
                answer = yoi(venv_bin, ["send", worker_ref.group(0), MARKER], tmp_path, env_cli)
                assert MARKER in answer
            except BaseException:
                for name in ("gateway.log", "runtime.log"):
                    print(f"--- {name}\n{(tmp_path / name).read_text(errors='replace')[-3000:]}")
                raise

    example = readme_example()
    sent = re.search(r'SendInput\(text="([^"]+)"\)', example)
    assert sent, "the README example sends a text"
    printed = run([str(installed), "-c", example], timeout_s=60, cwd=tmp_path, env=env).stdout
    lines = printed.splitlines()
    assert any(line.startswith("text_done") and sent.group(1) in line for line in lines), printed
    assert lines[-1].startswith("run_finished"), printed
