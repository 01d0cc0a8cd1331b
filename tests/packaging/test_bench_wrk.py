"""`./run bench` asks for wrk before any scenario spends time (or installs it when root)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import wrk
from bench.__main__ import EXIT_MISSING_TOOL, main


@pytest.fixture
def no_wrk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither wrk nor apt-get on it


def test_without_wrk_and_not_root_it_says_how_to_install(no_wrk: None) -> None:
    message = wrk.ensure_installed(is_root=False)
    assert message is not None and "apt-get install wrk" in message


def test_as_root_without_apt_get_it_says_the_same(no_wrk: None) -> None:
    assert wrk.ensure_installed(is_root=True) == wrk.WRK_MISSING


def test_the_bench_exits_before_any_scenario_when_wrk_is_missing(
    no_wrk: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(wrk, "ensure_installed", lambda: wrk.WRK_MISSING)
    started = time.monotonic()
    assert main(["throughput", "--quick"]) == EXIT_MISSING_TOOL
    assert time.monotonic() - started < 2  # nothing was started
    err = capsys.readouterr().err
    assert "apt-get install wrk" in err and "throughput …" not in err
