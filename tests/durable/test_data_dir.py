"""Where the gateway keeps `backend-internal`: the per-user data directory unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.registry import embedded_store_path
from shared.settings import Settings
from tests.browser.gateway_process import running_gateway

ENV = ("YOI_DATA_DIR", "XDG_DATA_HOME")


def test_default_is_the_per_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings().data_dir == tmp_path / ".local" / "share" / "yoi"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == tmp_path / "xdg" / "yoi"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec: absolute only
    assert Settings().data_dir == tmp_path / ".local" / "share" / "yoi"


def test_empty_means_in_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YOI_DATA_DIR", "")
    assert Settings().data_dir is None
    assert embedded_store_path(Settings()) is None
    monkeypatch.setenv("YOI_DATA_DIR", str(tmp_path))
    assert embedded_store_path(Settings()) == tmp_path / "backend-internal.sqlite3"


@pytest.mark.slow
def test_ephemeral_flag_keeps_nothing_on_disk(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        running_gateway(
            tmp_path, env={"YOI_DATA_DIR": str(data)}, extra_args=["--ephemeral"]
        ) as gw,
        gw.client() as client,
    ):
        assert client.post("/api/companion/messages", json={"text": "hi"}).status_code == 202
    assert "in memory only" in gw.log_tail()
    assert not data.exists()
