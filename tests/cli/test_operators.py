"""`yoi members`, `yoi drain` and `yoi worker` against real processes: a gateway, two runtime
processes of one fleet runtime on the real Redis, and the `yoi` command line itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli.errors import NOT_FOUND, USAGE
from tests.browser.gateway_process import Gateway, running_gateway
from tests.cli.support import clean_env, yoi
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import FAST_ENV, Fleet
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(redis_url, namespace, tmp_path)
    yield made
    made.stop_all()
    delete_namespace(redis_url, namespace)


@pytest.fixture
def gateway(fleet: Fleet, redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Gateway]:
    fleet.start("m1")
    fleet.start("m2")
    env = {
        **FAST_ENV,
        "YOI_REDIS_URL": redis_url,
        "YOI_NAMESPACE": namespace,
        "YOI_FLEETS": "fleet",
    }
    with running_gateway(tmp_path, env=env) as running:
        yield running


def run(gateway: Gateway, *args: str) -> Any:
    return yoi("--gateway", gateway.url, *args, env=clean_env())


def members(gateway: Gateway) -> dict[str, dict[str, Any]]:
    done = run(gateway, "members", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["member_id"]: row for row in rows}


def create(gateway: Gateway, name: str) -> str:
    with gateway.client() as client:
        response = client.post("/api/runtimes/fleet/workers", json={"display_name": name})
    assert response.status_code == 201, response.text
    worker_id: str = response.json()["worker_id"]
    return worker_id


def worker_json(gateway: Gateway, worker_id: str) -> dict[str, Any]:
    done = run(gateway, "worker", f"fleet/{worker_id}", "--json")
    assert done.returncode == 0, done.stderr
    detail: dict[str, Any] = json.loads(done.stdout)
    return detail


def host_of(gateway: Gateway, worker_id: str) -> str | None:
    """Where a Worker runs, read through the API (cheaper than a `yoi` process per poll)."""
    with gateway.client() as client:
        response = client.get(f"/api/runtimes/fleet/workers/{worker_id}")
    host: str | None = response.json()["diagnostics"]["host"]
    return host


def member_names(gateway: Gateway) -> set[str]:
    with gateway.client() as client:
        return {m["member_id"] for m in client.get("/api/runtimes/fleet/members").json()["members"]}


def test_members_lists_every_runtime_process(gateway: Gateway) -> None:
    wait_until_sync(lambda: member_names(gateway) == {"m1", "m2"}, timeout_s=20, what="members")
    listed = members(gateway)
    assert all(row["alive"] and not row["draining"] for row in listed.values())
    assert all(row["runtime_id"] == "fleet" and row["capacity"] == 1000 for row in listed.values())
    assert all(0 <= row["heartbeat_age_ms"] < 5000 for row in listed.values())
    table = run(gateway, "members")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["MEMBER", "RUNTIME", "STATE", "CAPACITY", "HOSTED", "HEARTBEAT"]
    assert sorted(line.split()[0] for line in lines) == ["m1", "m2"]
    assert all(line.split()[2] == "alive" for line in lines)


def test_drain_hands_workers_back_and_takes_no_new_ones(gateway: Gateway) -> None:
    wait_until_sync(lambda: member_names(gateway) == {"m1", "m2"}, timeout_s=20, what="members")
    workers = [create(gateway, f"drain{i}") for i in range(6)]
    wait_until_sync(
        lambda: all(host_of(gateway, w) for w in workers),
        timeout_s=20,
        what="every worker hosted",
    )
    assert members(gateway)["m1"]["hosted"] > 0

    done = run(gateway, "drain", "m1", "--wait", "20")
    assert done.returncode == 0, done.stderr
    assert "member m1 of fleet drains" in done.stdout
    assert "member m1 hosts no workers" in done.stdout
    listed = members(gateway)
    assert listed["m1"]["draining"] and listed["m1"]["alive"] and listed["m1"]["hosted"] == 0

    wait_until_sync(
        lambda: all(host_of(gateway, w) == "m2" for w in workers),
        timeout_s=20,
        what="every worker on m2",
    )
    fresh = create(gateway, "after-drain")
    wait_until_sync(
        lambda: host_of(gateway, fresh) is not None,
        timeout_s=20,
        what="the new worker hosted",
    )
    assert worker_json(gateway, fresh)["diagnostics"]["host"] == "m2"

    # An input sent after the drain is answered by the member that took its Worker.
    sent = yoi(
        "--gateway", gateway.url, "send", f"fleet/{workers[0]}", "still answered", env=clean_env()
    )
    assert sent.returncode == 0, sent.stderr
    assert "still answered" in sent.stdout

    again = run(gateway, "drain", "m1")  # idempotent
    assert again.returncode == 0, again.stderr


def test_worker_shows_host_epoch_queue_and_usage(gateway: Gateway) -> None:
    worker_id = create(gateway, "shown")
    sent = run(gateway, "send", f"fleet/{worker_id}", "count my tokens")
    assert sent.returncode == 0, sent.stderr
    detail = worker_json(gateway, worker_id)
    assert detail["diagnostics"]["host"] in {"m1", "m2"}
    shown = run(gateway, "worker", "shown@fleet")
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines() if " " in line)
    assert fields["worker"].strip() == f"fleet/{worker_id}"
    assert fields["host"].strip() == detail["diagnostics"]["host"]
    assert fields["epoch"].strip() == str(detail["diagnostics"]["epoch"]) != "0"
    assert fields["queue"].strip() == "0"
    usage = detail["usage"]
    assert usage["runs"] == 1 and usage["output_tokens"] > 0
    assert f"{usage['input_tokens']} in / {usage['output_tokens']} out" in fields["tokens"]


def test_drain_refuses_what_it_cannot_do(gateway: Gateway) -> None:
    unknown = run(gateway, "drain", "nobody")
    assert unknown.returncode == NOT_FOUND
    assert "no member nobody" in unknown.stderr
    assert run(gateway, "drain", "bad/id").returncode == USAGE
    # Through the API: an unknown member is a typed 422; the embedded runtime has none to drain.
    missing = httpx.post(f"{gateway.url}/api/runtimes/fleet/members/nobody/drain", timeout=10)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "invalid_input"
    embedded = httpx.post(
        f"{gateway.url}/api/runtimes/backend-internal/members/embedded/drain", timeout=10
    )
    assert embedded.status_code == 501
    assert embedded.json()["error"]["code"] == "unsupported_operation"
