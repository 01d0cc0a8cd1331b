"""With every default, a real runtime process answers texts that look like chaos hooks as text."""

from __future__ import annotations

import pytest

from runtime_worker.runtime import Runtime
from shared.events import RunFinished, TextDone
from shared.models import SendInput, Strategy
from tests.fleet.support import (
    Fleet,
    create_workers,
    of_type,
    wait_finished,
    wait_hosted,
    wait_members,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def test_a_runtime_process_answers_crash_as_text(fleet: Fleet, client: Runtime) -> None:
    member = fleet.start("m1")  # no provider named: the default, echo
    await wait_members(client, ["m1"])
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    texts = ["/crash now", "/fail please", "/fail-mid too"]
    sent = [
        await client.send_input(worker_id, SendInput(text=t, strategy=Strategy.ENQUEUE))
        for t in texts
    ]
    seen = await wait_finished(client, {worker_id: {s.input_id for s in sent}})
    for text, accepted in zip(texts, sent, strict=True):
        (finished,) = of_type(seen[worker_id], RunFinished, accepted.input_id)
        assert finished.result == "finished"
        (done,) = of_type(seen[worker_id], TextDone, accepted.input_id)
        assert done.text == f"You said: {text}"
    assert member.alive
