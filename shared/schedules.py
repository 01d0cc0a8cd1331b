"""Wire models of schedules: an input sent to a Worker at a time (`at`) or on a cron (`cron`).

The body's form is checked here (exactly one of `at` and `cron`, `timezone` only with `cron`,
`at` with its offset); what needs a clock or a calendar (an `at` not in the past nor too far
ahead, a cron expression that parses and fires, a known timezone) is checked by the runtime,
which answers the same typed 422.
"""

from __future__ import annotations

from typing import Self

from pydantic import AwareDatetime, BaseModel, Field, model_validator

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CRON_MAX_CHARS = 200
TIMEZONE_MAX_CHARS = 64


class CreateSchedule(BaseModel):
    """The body of `POST …/schedules`."""

    text: str = Field(min_length=1, description="The input sent at each firing.")
    at: AwareDatetime | None = Field(
        default=None,
        description="Once, at this ISO 8601 time (with its offset, e.g. `Z` or `+02:00`).",
    )
    cron: str | None = Field(
        default=None,
        min_length=1,
        max_length=CRON_MAX_CHARS,
        description="On every slot of this crontab expression: five fields (names such as "
        "`mon-fri` and `jan` allowed) or an alias (`@hourly`, `@daily`, `@weekly`, `@monthly`, "
        "`@yearly`).",
    )
    timezone: str | None = Field(
        default=None,
        min_length=1,
        max_length=TIMEZONE_MAX_CHARS,
        description="The IANA timezone the cron expression is read in (default `UTC`).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.at is None) == (self.cron is None):
            raise ValueError("give exactly one of `at` and `cron`")
        if self.at is not None and self.timezone is not None:
            raise ValueError("`timezone` goes with `cron` (an `at` time carries its offset)")
        return self


class Schedule(BaseModel):
    """A schedule as listed: `next_fire_at` (unix seconds, like every `_at` of the API) is when
    it sends its input next; each firing is an ordinary input whose `input_id` is derived from
    the schedule and the slot (`at-<schedule_id>-<slot>` or `cron-<schedule_id>-<slot>`)."""

    schedule_id: str
    worker_id: str
    text: str
    at: AwareDatetime | None = None
    cron: str | None = None
    timezone: str | None = None
    created_at: float
    next_fire_at: float = Field(description="Unix seconds of the next firing.")


class ScheduleList(BaseModel):
    schedules: list[Schedule]
