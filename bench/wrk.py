"""Drive HTTP load with wrk: one Python process with httpx measures itself, not the server.

The Lua script rotates POSTs over a list of paths (one per Worker) and prints wrk's summary as
one JSON line, so nothing depends on wrk's human-readable output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCH_WRK "

_LUA = """
local paths = {%(paths)s}
local body = %(body)s
local headers = { ["Content-Type"] = "application/json" }
local counter = 0

function init(args)
  counter = math.random(#paths)
end

function request()
  counter = counter + 1
  return wrk.format("%(method)s", paths[(counter %% #paths) + 1], headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    socket_errors: int
    non_2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        """Requests answered 2xx/3xx (wrk counts everything else as a status error)."""
        return self.requests - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_rps": round(self.ok_per_s, 1),
            f"{prefix}_requests": float(self.requests),
            f"{prefix}_non_2xx": float(self.non_2xx),
            f"{prefix}_socket_errors": float(self.socket_errors),
            f"{prefix}_p50_ms": round(self.p50_ms, 3),
            f"{prefix}_p99_ms": round(self.p99_ms, 3),
        }


def available() -> bool:
    return shutil.which("wrk") is not None


WRK_MISSING = "wrk is not installed: install it with `apt-get install wrk` (as root) and run again"


def ensure_installed(*, is_root: bool | None = None) -> str | None:
    """Install wrk with apt-get when it is missing and we are root; else say what to do.

    Called before any scenario starts, so a missing tool costs seconds, not a half-run bench.
    Answers None when wrk is there, else the message to print.
    """
    if available():
        return None
    root = os.geteuid() == 0 if is_root is None else is_root
    if not root or shutil.which("apt-get") is None:
        return WRK_MISSING
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{WRK_MISSING} ({' '.join(argv[:2])} failed: {done.stderr.strip()[-200:]})"
    return None if available() else WRK_MISSING


def run_wrk(
    port: int,
    paths: list[str],
    body: str,
    duration_s: float,
    connections: int = 64,
    threads: int = 1,
    method: str = "POST",
) -> WrkResult:
    """POST `body` to `paths` in rotation on 127.0.0.1:`port` for `duration_s`."""
    if not available():
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = _LUA % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "body": _lua_string(body),
        "method": method,
        "marker": MARKER,
    }
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script_path = Path(tmp) / "load.lua"
        script_path.write_text(script)
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout", "10s",
            "-s", str(script_path),
            f"http://127.0.0.1:{port}{paths[0]}",
        ]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                non_2xx=raw["status"],
                p50_ms=raw["p50_us"] / 1000.0,
                p99_ms=raw["p99_us"] / 1000.0,
            )
    raise RuntimeError(f"wrk printed no summary (rc {done.returncode}): {done.stderr[-300:]}")
