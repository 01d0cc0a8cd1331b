"""The CLI's pure parts: option hoisting, references, SSE framing, tables, event lines, and the
escaping of terminal control characters in every text that came from outside."""

from __future__ import annotations

import json

import pytest
import typer

from gateway.cli.app import hoist_global_options
from gateway.cli.errors import USAGE, CliFailure
from gateway.cli.private_redis import where
from gateway.cli.refs import RefSpec, parse_ref
from gateway.cli.render import age, event_line, json_line, safe, short, table, transcript_line
from gateway.cli.supervisor import console_url
from gateway.client._sse import SseMessage, SseParser
from shared.events import ErrorEvent, RunFinished, TextDelta
from shared.models import RunResult, TranscriptEntry, TranscriptRole

WID = "01935c1e-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        (["send", "r", "t", "--token", "x"], ["--token", "x", "send", "r", "t"]),
        (["--token", "x", "send", "r", "t"], ["--token", "x", "send", "r", "t"]),
        (["tail", "r", "--gateway=http://h", "-f"], ["--gateway=http://h", "tail", "r", "-f"]),
        (
            ["--gateway", "http://h", "workers", "--token", "x"],
            ["--token", "x", "--gateway", "http://h", "workers"],
        ),
        (["send", "r", "--", "--token"], ["send", "r", "--", "--token"]),
        (["send", "r", "t", "--token"], ["--token", "send", "r", "t"]),  # click reports it
    ],
)
def test_global_options_move_before_the_command(argv: list[str], hoisted: list[str]) -> None:
    assert hoist_global_options(argv) == hoisted


def test_refs() -> None:
    assert parse_ref(f"fleet/{WID}") == RefSpec(f"fleet/{WID}", "fleet", worker_id=WID)
    assert parse_ref("bob@fleet") == RefSpec("bob@fleet", "fleet", display_name="bob")
    assert parse_ref(WID, default_runtime="fleet").worker_id == WID
    for bad in ("bob", "Fleet/" + WID, "fleet/123", "@fleet", "bob@", WID):
        with pytest.raises(CliFailure) as caught:
            parse_ref(bad)
        assert caught.value.exit_code == USAGE


def test_sse_framing_skips_heartbeats_and_joins_data_lines() -> None:
    lines = [
        ": ping",
        "",
        "id: 1-0",
        "event: text_delta",
        'data: {"a":',
        "data: 1}",
        "",
        ":",
        "id: 1-1",
        "data: x",
        "",
    ]
    parser = SseParser()
    messages = [message for line in lines if (message := parser.feed(line)) is not None]
    assert messages == [
        SseMessage(id="1-0", event="text_delta", data=['{"a":', "1}"]),
        SseMessage(id="1-1", event="message", data=["x"]),
    ]


def test_table_aligns_columns() -> None:
    text = table(["A", "LONGER"], [["wide-cell", "x"], ["y", ""]])
    assert text.splitlines() == ["A           LONGER", "wide-cell   x", "y"]


def test_age_uses_the_largest_unit() -> None:
    assert [age(0, now) for now in (5, 125, 7_300, 200_000)] == ["5s", "2m", "2h", "2d"]


def test_event_lines_are_one_line_each() -> None:
    delta = TextDelta(worker_id=WID, ts=0, cursor="5-1", text="two\nlines")
    assert event_line(delta) == '5-1  text_delta     "two\\nlines"'
    done = RunFinished(worker_id=WID, ts=0, cursor="5-2", result=RunResult.FAILED, reason="x")
    assert event_line(done) == "5-2  run_finished   result=failed reason=x"
    assert short("a" * 100).endswith('…"')
    assert len(short("a" * 100)) == 62


def test_redis_addresses_are_shown_without_credentials() -> None:
    assert where("redis://user:s3cret@cache:6380/2") == "cache:6380/2"
    assert where("redis://localhost") == "localhost:6379/0"


def test_console_url_for_wildcard_and_ipv6_binds() -> None:
    assert console_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/"
    assert console_url("::", 8000) == "http://[::1]:8000/"
    assert console_url("127.0.0.1", 9) == "http://127.0.0.1:9/"


RETITLE = "\x1b]0;owned\x07"  # OSC 0: sets the terminal's title
CLEAR = "\x1b[2J"


def test_safe_shows_control_characters_as_escapes() -> None:
    assert safe(f"hi{RETITLE}{CLEAR}\r\u202e!") == "hi\\x1b]0;owned\\x07\\x1b[2J\\x0d\\u202e!"
    assert safe("a\tb\nc\x9b", multiline=True) == "a\tb\nc\\x9b"
    assert safe("a\nb") == "a\\x0ab"
    assert safe("plain — ünïcode 日本") == "plain — ünïcode 日本"


def test_every_text_from_outside_is_escaped_in_tables_events_and_transcripts() -> None:
    assert "\x1b" not in table(["NAME"], [[f"bob{RETITLE}"]])
    error = ErrorEvent(worker_id=WID, ts=0, cursor="5-3", code="x", message=f"bad{CLEAR}")
    delta = TextDelta(worker_id=WID, ts=0, cursor="5-1", text=f"a{RETITLE}")
    entry = TranscriptEntry(
        cursor="1-0", role=TranscriptRole.ASSISTANT, text=f"one\ntwo{RETITLE}", ts=0
    )
    for line in (event_line(error), event_line(delta), transcript_line(entry)):
        assert "\x1b" not in line and "\x07" not in line
    assert "one\ntwo\\x1b]0;owned\\x07" in transcript_line(entry)


def test_json_output_is_ascii_and_parses_back() -> None:
    delta = TextDelta(worker_id=WID, ts=0, cursor="5-1", text=f"é{RETITLE}")
    line = json_line(delta)
    assert line.isascii() and "\x1b" not in line
    assert json.loads(line)["text"] == f"é{RETITLE}"


@pytest.mark.parametrize("name", ["gateway", "runtime"])
def test_python_m_and_yoi_share_one_command_definition(name: str) -> None:
    """`python -m gateway` / `python -m runtime_worker` run the very function `yoi` registers."""
    from gateway.cli.app import app
    from gateway.cli.servers import gateway
    from runtime_worker.command import command_app, runtime

    alone = {"gateway": gateway, "runtime": runtime}[name]
    callbacks = [c.callback for c in app.registered_commands if c.callback is not None]
    registered = next(c for c in callbacks if c.__name__ == name)
    assert getattr(registered, "__wrapped__", None) is alone
    flags = typer.main.get_command(command_app(alone)).params
    in_yoi = typer.main.get_group(app).commands[name].params
    assert [p.opts for p in flags] == [p.opts for p in in_yoi]


def test_failure_messages_are_printed_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """A gateway's error message may quote user text: it reaches the terminal escaped."""
    from gateway.cli.app import run

    def fail() -> None:
        raise CliFailure(f"no worker named 'bob{RETITLE}'", 4)

    one = typer.Typer()
    one.command()(fail)
    with pytest.raises(SystemExit) as stop:
        run(one, [], "yoi")
    assert stop.value.code == 4
    assert capsys.readouterr().err == "yoi: no worker named 'bob\\x1b]0;owned\\x07'\n"
