"""Placement policy and cron expressions: pure functions, no Redis."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from runtime_worker.cronspec import CronSpec
from runtime_worker.placement import alive_view, fair_share, plan
from runtime_worker.store.base import WorkerRecord
from shared.errors import InvalidInput
from shared.ids import new_id
from shared.models import MemberInfo, WorkerState


def _record(state: WorkerState = WorkerState.IDLE, host: str | None = None) -> WorkerRecord:
    return WorkerRecord(
        worker_id=new_id(),
        display_name="w",
        profile="assistant",
        created_at=0.0,
        state=state,
        host=host,
    )


def _member(member_id: str, hosted: int = 0, capacity: int = 1000) -> MemberInfo:
    return MemberInfo(member_id=member_id, capacity=capacity, hosted=hosted, alive=True)


@pytest.mark.parametrize(
    ("live", "capacities", "share"),
    [
        (200, [1000, 1000, 1000], 67),
        (200, [10, 1000], 190),
        (0, [5], 0),
        (10, [2, 3], 3),
        (7, [1000], 7),
        (3, [], 0),
    ],
)
def test_fair_share_water_fills_capacities(live: int, capacities: list[int], share: int) -> None:
    assert fair_share(live, capacities) == share


def test_plan_takes_unhosted_up_to_the_share() -> None:
    records = [_record(WorkerState.PENDING) for _ in range(9)]
    members = alive_view([_member("b"), _member("c")], "a", 1000, 0)
    step = plan(records, me="a", hosted=set(), members=members, rng=random.Random(1))
    assert step.target == 3 and step.want == 3
    assert sorted(step.take) == sorted(r.worker_id for r in records)


def test_a_draining_member_counts_for_nothing_in_the_share() -> None:
    records = [_record(WorkerState.PENDING) for _ in range(6)]
    draining = _member("b").model_copy(update={"draining": True})
    members = alive_view([draining, _member("c")], "a", 1000, 0)
    assert sorted(m.member_id for m in members) == ["a", "c"]
    step = plan(records, me="a", hosted=set(), members=members, rng=random.Random(1))
    assert step.target == 3  # six Workers over two members, not three


def test_plan_takes_workers_of_dead_members_and_reclaims_its_own() -> None:
    dead = [_record(host="gone") for _ in range(2)]
    held = [_record(host="b") for _ in range(2)]
    mine = _record(host="a")
    ended = _record(WorkerState.STOPPED, host="a")
    members = alive_view([_member("b", hosted=2)], "a", 1000, 1)
    step = plan([*dead, *held, mine, ended], me="a", hosted={ended.worker_id}, members=members)
    assert sorted(step.take) == sorted(r.worker_id for r in dead)
    assert step.reclaim == [mine.worker_id]
    assert step.drop == [ended.worker_id]


def test_plan_disowns_its_lost_workers_beyond_its_share() -> None:
    mine = [_record(host="a") for _ in range(4)]
    for record in mine:
        record.epoch = 7
    members = alive_view([_member("b", hosted=0)], "a", 1000, 0)
    step = plan(mine, me="a", hosted=set(), members=members)
    assert len(step.reclaim) == 2 and step.want == 0
    assert set(step.disown) == {r.worker_id for r in mine} - set(step.reclaim)
    assert set(step.disown.values()) == {7}


def test_plan_sheds_idle_workers_only_when_another_member_has_room() -> None:
    records = [_record(host="a") for _ in range(10)]
    busy = records[0]
    busy.state, busy.next_seq = WorkerState.RUNNING, 1
    hosted = {r.worker_id for r in records}
    crowded = alive_view([_member("b", hosted=0)], "a", 1000, 10)
    step = plan(records, me="a", hosted=hosted, members=crowded)
    assert len(step.shed) == 5 and busy.worker_id not in step.shed
    full = alive_view([_member("b", hosted=1, capacity=1)], "a", 1000, 10)
    assert plan(records, me="a", hosted=hosted, members=full).shed == []


def test_stopping_workers_need_a_host() -> None:
    draining = _record(WorkerState.STOPPING)
    step = plan([draining], me="a", hosted=set(), members=alive_view([], "a", 10, 0))
    assert step.take == [draining.worker_id] and step.want == 1


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_cron_five_fields_fire_on_minutes() -> None:
    spec = CronSpec.parse("*/15 9-17 * * mon-fri")
    monday = _ts("2024-01-01T09:00:00")
    assert spec.matches(monday)
    assert not spec.matches(monday + 60)
    assert not spec.matches(_ts("2024-01-06T09:00:00"))  # a Saturday
    assert spec.slots(monday - 1, monday + 3600) == [monday + 900 * i for i in range(5)]


def test_cron_six_fields_have_seconds_and_day_or_weekday() -> None:
    every_other = CronSpec.parse("*/2 * * * * *")
    assert every_other.slots(100, 110) == [102, 104, 106, 108, 110]
    either = CronSpec.parse("0 0 13 * 5")  # the 13th, or any Friday
    assert either.matches(_ts("2024-09-13T00:00:00"))
    assert either.matches(_ts("2024-09-06T00:00:00"))
    assert not either.matches(_ts("2024-09-07T00:00:00"))
    assert CronSpec.parse("0 0 * * 7").matches(_ts("2024-09-08T00:00:00"))  # 7 is Sunday


def test_cron_aliases_names_and_timezones() -> None:
    daily = CronSpec.parse("@daily")
    assert daily.next_after(_ts("2024-03-09T10:00:00")) == _ts("2024-03-10T00:00:00")
    assert CronSpec.parse("0 12 1 jan *").matches(_ts("2025-01-01T12:00:00"))
    paris = CronSpec.parse("0 9 * * *", timezone="Europe/Paris")
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer (DST from 30 March 2025)
    assert paris.next_after(_ts("2025-03-28T12:00:00")) == _ts("2025-03-29T08:00:00")
    assert paris.next_after(_ts("2025-03-30T12:00:00")) == _ts("2025-03-31T07:00:00")
    with pytest.raises(InvalidInput):
        CronSpec.parse("0 9 * * *", timezone="Mars/Olympus")


@pytest.mark.parametrize("expr", ["", "* * *", "61 * * * *", "*/0 * * * *", "a * * * *"])
def test_cron_rejects_nonsense(expr: str) -> None:
    with pytest.raises(InvalidInput):
        CronSpec.parse(expr)
