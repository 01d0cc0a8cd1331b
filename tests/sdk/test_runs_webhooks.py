"""The SDK's runs methods, `send(..., wait_s=)` and `update_worker` against a real gateway
process, sync and async: one definition of each call in `_calls.py`."""

from __future__ import annotations

import pytest

from gateway.client import AsyncClient, Client
from shared.errors import InvalidInput
from shared.models import InputAccepted, RunDetail, RunPage, RunResult
from tests.sdk.conftest import TOKEN, Gateway

pytestmark = pytest.mark.slow


def test_runs_and_wait_sync(gateway: Gateway) -> None:
    with Client(gateway.url, token=TOKEN) as client:
        worker = client.create_worker("fleet", "runs-sync")
        run = client.send("fleet", worker.worker_id, "short", wait_s=20)
        assert isinstance(run, RunDetail) and run.result is RunResult.FINISHED
        assert run.text == "You said: short"
        long_text = " ".join(f"w{n}" for n in range(200))  # 20 ms a word: about 4 s
        accepted = client.send("fleet", worker.worker_id, long_text, wait_s=0.2)
        assert isinstance(accepted, InputAccepted)
        page = client.list_runs("fleet", worker.worker_id, limit=10)
        assert isinstance(page, RunPage)
        assert run.run_id in {r.run_id for r in page.runs}
        found = client.get_run("fleet", worker.worker_id, run.run_id)
        assert (found.run_id, found.text) == (run.run_id, run.text)
        with pytest.raises(InvalidInput, match="YOI_WEBHOOK_ALLOWED_HOSTS"):
            client.update_worker("fleet", worker.worker_id, webhook_url="http://127.0.0.1:9/h")
        assert client.get_worker("fleet", worker.worker_id).webhook is None
        client.stop("fleet", worker.worker_id)


async def test_runs_and_wait_async(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, token=TOKEN) as client:
        worker = await client.create_worker("fleet", "runs-async")
        run = await client.send("fleet", worker.worker_id, "short", wait_s=20)
        assert isinstance(run, RunDetail) and run.text == "You said: short"
        page = await client.list_runs("fleet", worker.worker_id)
        assert [r.run_id for r in page.runs] == [run.run_id]
        assert (await client.get_run("fleet", worker.worker_id, run.run_id)).run_id == run.run_id
        with pytest.raises(InvalidInput):
            await client.update_worker("fleet", worker.worker_id, webhook_url="ftp://x/")
        cleared = await client.update_worker("fleet", worker.worker_id, webhook_url=None)
        assert cleared.webhook is None
        await client.stop("fleet", worker.worker_id)
