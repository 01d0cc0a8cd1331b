"""A few plain HTTP calls to a gateway for the `yoi up` process tests: create a fleet Worker (or
find the Companion), send it an input, read its events and transcript, find the runtime process
that hosts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.cli.support import ProcId, descendants
from tests.helpers import wait_until_sync


class Gateway:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.runtime_of: dict[str, str] = {}  # worker ids not in it are of the fleet runtime

    def close(self) -> None:
        self.http.close()

    def create(self, name: str, runtime_id: str = "fleet") -> str:
        answer = self.http.post(f"/api/runtimes/{runtime_id}/workers", json={"display_name": name})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["worker_id"])

    def companion(self) -> str:
        """The Companion's worker id (on backend-internal, created on first use)."""
        answer = self.http.get("/api/companion")
        assert answer.status_code == 200, answer.text
        worker_id = str(answer.json()["worker_id"])
        self.runtime_of[worker_id] = "backend-internal"
        return worker_id

    def path(self, worker_id: str) -> str:
        runtime_id = self.runtime_of.get(worker_id, "fleet")
        return f"/api/runtimes/{runtime_id}/workers/{worker_id}"

    def send(self, worker_id: str, text: str, input_id: str) -> str:
        body = {"text": text, "input_id": input_id, "strategy": "enqueue"}
        answer = self.http.post(self.path(worker_id) + "/inputs", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["cursor"])

    def events(self, worker_id: str, after: str | None = None) -> list[dict[str, Any]]:
        """Every event kept (after `after`), page by page."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        while True:
            page = self.http.get(self.path(worker_id) + "/events", params=params).json()
            found += page["events"]
            if len(page["events"]) < 1000:
                return found
            params["after"] = page["cursor"]

    def of_input(self, worker_id: str, input_id: str, kind: str) -> list[dict[str, Any]]:
        events = self.events(worker_id)
        return [e for e in events if e["type"] == kind and e.get("input_id") == input_id]

    def wait_for(
        self, worker_id: str, input_id: str, kind: str, timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        """The events of type `kind` of one input, once there is at least one."""
        wait_until_sync(
            lambda: bool(self.of_input(worker_id, input_id, kind)),
            timeout_s=timeout_s,
            what=f"{kind} of {input_id}",
        )
        return self.of_input(worker_id, input_id, kind)

    def host_pid(self, worker_id: str) -> int:
        """The pid of the hosting runtime process, read from its member id
        (`<hostname>-<pid>-<random>`, runtime_worker.member.new_member_id)."""
        detail = self.http.get(self.path(worker_id)).json()
        host = detail["diagnostics"]["host"]
        assert host, detail
        return int(host.rsplit("-", 2)[1])

    def transcript_texts(self, worker_id: str) -> list[str]:
        answer = self.http.get(self.path(worker_id) + "/transcript")
        assert answer.status_code == 200, answer.text
        return [entry["text"] for entry in answer.json()["entries"]]


def argv_of(pid: int) -> list[str]:
    """A process's argv ([] once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def children_running(root: int, command: str) -> set[ProcId]:
    """Processes below `root` running `python -m gateway.cli <command>`."""
    return {p for p in descendants(root) if argv_of(p[0])[3:4] == [command]}
