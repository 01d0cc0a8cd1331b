"""What both clients' streams share: resuming from the last cursor after a dropped connection
(`Last-Event-ID`, so nothing is missed and nothing repeats), and following one input's answer,
whose text restarts when its run starts again as a new attempt (its host was lost)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.client._errors import ConnectionFailed
from shared.errors import YoiError
from shared.events import Event, RunFinished, UsageEvent
from shared.logs import redact_url

# Longer than the gateway's heartbeat interval: a silent stream this long means a dead gateway.
STREAM_READ_TIMEOUT_S = 60.0
STREAM_RETRIES = 5
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0


@dataclass
class Resume:
    """The cursor a stream resumes from, and the backoff between reconnects that bring nothing."""

    gateway: str
    cursor: str | None
    failures: int = 0

    def headers(self) -> dict[str, str]:
        return {} if self.cursor is None else {"Last-Event-ID": self.cursor}

    def seen(self, cursor: str | None) -> None:
        """A message arrived: the connection works; resume after it from now on."""
        self.failures = 0
        if cursor:
            self.cursor = cursor

    def dropped(self, cause: Exception | None) -> float:
        """The stream ended or broke: the wait before reconnecting, or raise when it keeps
        failing (a typed error the gateway sent on reconnect is raised as it is)."""
        self.failures += 1
        if isinstance(cause, YoiError) and not cause.retryable:
            raise cause
        if self.failures > STREAM_RETRIES:
            if isinstance(cause, YoiError):
                raise cause
            raise ConnectionFailed(
                f"the event stream of the gateway at {redact_url(self.gateway)} keeps failing"
            ) from cause
        if isinstance(cause, YoiError) and cause.retry_after_s is not None:
            return cause.retry_after_s
        return min(BACKOFF_FIRST_S * 2.0**self.failures, BACKOFF_MAX_S)


@dataclass
class Answer:
    """One input's answer as it streams: `text` is the current attempt's only (an abandoned
    attempt's partial text is dropped when `run_started` says `attempt` 2 or more)."""

    input_id: str
    text: str = ""
    attempt: int = 0
    run_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    finished: RunFinished | None = None

    def feed(self, event: Event) -> bool:
        """Take one event of the Worker's stream; True when it belongs to this input."""
        if event.input_id != self.input_id:
            return False
        if event.type == "run_started":
            self.attempt, self.run_id, self.text = event.attempt, event.run_id, ""
            self.input_tokens = self.output_tokens = 0
        elif event.type == "text_delta":
            self.text += event.text
        elif event.type == "text_done":
            self.text = event.text
        elif isinstance(event, UsageEvent):
            self.input_tokens += event.input_tokens
            self.output_tokens += event.output_tokens
        elif event.type == "error":
            self.errors.append(f"{event.message} ({event.code})")
        elif event.type == "run_finished":
            self.finished = event
        return True

    @property
    def done(self) -> bool:
        return self.finished is not None
