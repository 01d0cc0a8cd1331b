"""The Companion console in headless Chromium against a real `yoi gateway` process.

The echo provider streams its answer (which contains the sent text verbatim) one word at a time,
40 ms apart, so every answer takes long enough to watch, cancel or interrupt. Nothing here
sleeps: each step waits on a condition of the page with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Request, expect

from tests.browser.gateway_process import Gateway
from tests.helpers import wait_until_sync

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BUSY = "The Companion is still answering — wait or cancel."
TOKEN = "secret-token"

ANSWERS = '[data-testid="turn"][data-role="assistant"]'

# Records the last answer's text length and result on every change of the transcript's DOM, so a
# test can read back each state the person saw, however quickly it passed.
WATCH_ANSWER_JS = """() => {
  const root = document.querySelector('[data-testid="transcript"]');
  const seen = [];
  window.__answerLog = seen;
  const note = () => {
    const turns = root.querySelectorAll('[data-testid="turn"][data-role="assistant"]');
    const turn = turns[turns.length - 1];
    if (!turn) return;
    const text = turn.querySelector('[data-testid="turn-text"]').textContent;
    seen.push({ result: turn.dataset.result, length: text.length });
  };
  new MutationObserver(note).observe(root, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}"""

STREAMED_SOME_JS = """(minLength) => {
  const turns = document.querySelectorAll('[data-testid="turn"][data-role="assistant"]');
  const turn = turns[turns.length - 1];
  return turn !== undefined && turn.dataset.result === "streaming" &&
    turn.querySelector('[data-testid="turn-text"]').textContent.length >= minLength;
}"""


def message(tag: str, words: int) -> str:
    """A unique message of `words` words ending in a sentinel word only its end contains."""
    return " ".join([tag, *(f"{tag}{i}" for i in range(words)), f"{tag}-end"])


def open_console(page: Page, gateway: Gateway) -> None:
    page.goto(gateway.url + "/")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "idle")


def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")


def last_answer(page: Page) -> Locator:
    return page.locator(ANSWERS).last


def answer_text(turn: Locator) -> str:
    return turn.get_by_test_id("turn-text").text_content() or ""


def wait_streaming(page: Page, min_chars: int = 1) -> None:
    page.wait_for_function(STREAMED_SOME_JS, arg=min_chars, polling="raf")


def wait_idle(page: Page) -> None:
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "idle")


def snapshot(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.__yoi.snapshot()")
    return result


def transcript(gateway: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    with gateway.client() as client:
        response = client.get("/api/companion/transcript", params={"limit": limit})
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def squash(text: str) -> str:
    """Text without whitespace: rendered paragraphs join without the blank lines between them."""
    return "".join(text.split())


def test_answer_streams_in_and_ends_with_the_full_text(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    expect(page.get_by_test_id("companion-ref")).to_have_text("companion@backend-internal")
    page.evaluate(WATCH_ANSWER_JS)
    text = message("stream", 16)

    send(page, text)

    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "generating")
    expect(page.get_by_test_id("composer-reason")).to_have_text("Waiting for the answer…")
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(page.get_by_test_id("cancel")).to_be_visible()
    user = page.locator('[data-testid="turn"][data-role="user"]').last
    expect(user.get_by_test_id("turn-text")).to_have_text(text)
    wait_idle(page)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "finished")
    expect(answer.get_by_test_id("turn-text")).to_contain_text(text)
    expect(page.get_by_test_id("cancel")).to_be_hidden()

    final = len(answer_text(answer))
    log: list[dict[str, Any]] = page.evaluate("window.__answerLog")
    partial = [entry["length"] for entry in log if entry["result"] == "streaming"]
    assert partial == sorted(partial), f"the answer shrank while streaming: {partial}"
    seen = {length for length in partial if 0 < length < final}
    assert len(seen) >= 2, f"expected the answer to grow in steps, saw lengths {partial}"
    assert log[-1]["result"] == "finished"


@pytest.mark.parametrize("how", ["button", "escape"])
def test_cancel_mid_answer_marks_the_turn_cancelled(page: Page, gateway: Gateway, how: str) -> None:
    open_console(page, gateway)
    text = message("cancel", 80)
    send(page, text)
    wait_streaming(page)

    if how == "button":
        page.get_by_test_id("cancel").click()
    else:
        page.get_by_test_id("composer-input").press("Escape")

    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "cancelled")
    expect(answer.get_by_test_id("turn-badge")).to_have_text("Cancelled")
    wait_idle(page)
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    expect(page.get_by_test_id("error-region")).to_have_text("Cancelled")
    assert "cancel-end" not in answer_text(answer)
    send_again = page.get_by_test_id("composer-input")
    send_again.fill("after the cancel")
    expect(page.get_by_test_id("send")).to_be_enabled()


def test_busy_gateway_answer_is_shown_in_words(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    first = message("busy", 50)
    send(page, first)
    wait_streaming(page)

    # The composer refuses to send while generating; this sends through the page's own send
    # path anyway, as a race with another client would, so the gateway answers 409 worker_busy.
    with page.expect_response(
        lambda r: r.url.endswith("/api/companion/messages") and r.request.method == "POST"
    ) as refused:
        accepted = page.evaluate("window.__yoi.send('second while busy')")

    assert accepted is False
    assert refused.value.status == 409
    alert = page.get_by_test_id("error-region")
    expect(alert).to_have_text(BUSY)
    expect(alert).to_have_attribute("data-code", "worker_busy")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "generating")
    wait_idle(page)
    expect(last_answer(page)).to_have_attribute("data-result", "finished")
    expect(last_answer(page).get_by_test_id("turn-text")).to_contain_text(first)
    expect(page.get_by_test_id("turn").filter(has_text="second while busy")).to_have_count(0)


def test_reload_keeps_the_transcript(page: Page, fresh_gateway: Gateway) -> None:
    gateway = fresh_gateway
    open_console(page, gateway)
    finished, cancelled = message("kept", 4), message("stopped", 80)
    send(page, finished)
    wait_idle(page)
    expect(last_answer(page)).to_have_attribute("data-result", "finished")
    answered = answer_text(last_answer(page))
    send(page, cancelled)
    wait_streaming(page)
    page.get_by_test_id("cancel").click()
    expect(last_answer(page)).to_have_attribute("data-result", "cancelled")
    wait_idle(page)

    page.reload()

    wait_idle(page)
    turns = page.get_by_test_id("turn")
    expect(turns).to_have_count(4)
    for i, role in enumerate(["user", "assistant", "user", "assistant"]):
        expect(turns.nth(i)).to_have_attribute("data-role", role)
    expect(turns.nth(0).get_by_test_id("turn-text")).to_have_text(finished)
    expect(turns.nth(1)).to_have_attribute("data-result", "finished")
    expect(turns.nth(1).get_by_test_id("turn-text")).to_have_text(answered)
    expect(turns.nth(2).get_by_test_id("turn-text")).to_have_text(cancelled)
    expect(turns.nth(3)).to_have_attribute("data-result", "cancelled")
    expect(turns.nth(3).get_by_test_id("turn-badge")).to_have_text("Cancelled")


def expect_failed_answer(page: Page, *, result: str, badge: str, code: str, words: str) -> None:
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", result)
    expect(answer.get_by_test_id("turn-badge")).to_have_text(badge)
    expect(answer.get_by_test_id("turn-note")).to_have_text(words)
    alert = page.get_by_test_id("error-region")
    expect(alert).to_have_text(words)
    expect(alert).to_have_attribute("data-code", code)
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "error")
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    page.get_by_test_id("composer-input").fill("and now?")
    expect(page.get_by_test_id("send")).to_be_enabled()


def test_provider_failure_is_marked_and_explained(
    page: Page, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(env={"YOI_PROVIDER": "chaos"})
    open_console(page, gateway)

    send(page, "/fail-mid " + message("broken", 8))  # the chaos provider fails after one piece

    expect_failed_answer(
        page,
        result="failed",
        badge="Failed",
        code="provider_error",
        words="The language model could not answer. Try again in a moment.",
    )


def test_turn_timeout_is_marked_and_explained(
    page: Page, start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    # An operator's profile overrides the built-in Companion with a very short turn timeout.
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "companion.toml").write_text(
        'name = "companion"\nprovider = "echo"\nprompt = "companion.md"\nturn_timeout_s = 0.4\n'
    )
    gateway = start_gateway(env={"YOI_PROFILES_DIR": str(profiles)})
    open_console(page, gateway)

    send(page, message("slowly", 40))

    expect_failed_answer(
        page,
        result="timed_out",
        badge="Timed out",
        code="timeout",
        words="The answer took too long and was stopped.",
    )


def test_opening_mid_answer_shows_it_at_once_and_streams_on(
    page: Page, fresh_gateway: Gateway
) -> None:
    gateway = fresh_gateway
    text = message("attach", 60)
    with gateway.client() as client:
        client.post("/api/companion/messages", json={"text": text}).raise_for_status()

        def answering() -> bool:
            flight = client.get("/api/companion").json()["in_flight"]
            return flight is not None and flight["text"] != ""

        wait_until_sync(answering, timeout_s=10, what="the answer to start")

    page.goto(gateway.url + "/")

    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "streaming")
    expect(answer.get_by_test_id("turn-text")).not_to_have_text("")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "generating")
    expect(page.get_by_test_id("cancel")).to_be_visible()
    wait_idle(page)
    expect(answer).to_have_attribute("data-result", "finished")
    run = snapshot(page)["runs"][-1]
    # The in-flight text plus what streamed after its cursor is the full answer: no gap, no repeat.
    assert run["streamed"] == run["final"]
    assert squash(answer_text(answer)) == squash(run["final"])
    assert answer_text(answer).count(text) == 1
    expect(page.get_by_test_id("turn").filter(has_text=text)).to_have_count(2)


def test_earlier_messages_load_on_request(
    page: Page, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(echo_delay_ms=0)
    texts = [f"page {i}" for i in range(30)]
    with gateway.client() as client:
        for text in texts:
            body = {"text": text, "strategy": "enqueue"}
            client.post("/api/companion/messages", json=body).raise_for_status()
    wait_until_sync(
        lambda: len(transcript(gateway, limit=100)) == 60 and transcript(gateway)[-1]["result"],
        timeout_s=20,
        what="30 answered messages",
    )

    open_console(page, gateway)
    turns = page.get_by_test_id("turn")
    expect(turns).to_have_count(50)
    expect(turns.first.get_by_test_id("turn-text")).to_have_text("page 5")
    page.get_by_test_id("load-earlier").click()

    expect(turns).to_have_count(60)
    expect(page.get_by_test_id("load-earlier")).to_be_hidden()
    users = page.locator('[data-testid="turn"][data-role="user"] [data-testid="turn-text"]')
    expect(users).to_have_text(texts)


def test_dropped_stream_resumes_without_losing_or_repeating_text(
    page: Page, gateway: Gateway
) -> None:
    context: BrowserContext = page.context
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events/stream" in r.url else None)
    open_console(page, gateway)
    text = message("resume", 50)
    send(page, text)
    wait_streaming(page, min_chars=len("resume resume0 resume1"))

    # The network goes away and the open stream is cut: the console must say so and keep trying.
    context.set_offline(True)
    page.evaluate("window.__yoi.dropStream()")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "reconnecting")
    expect(page.get_by_test_id("composer-reason")).to_have_text("Reconnecting…")
    dropped = snapshot(page)
    at_drop = dropped["runs"][-1]
    assert at_drop["result"] is None, "the answer ended before the stream was cut"
    opened_before_drop = len(streams)
    context.set_offline(False)

    wait_idle(page)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "finished")
    state = snapshot(page)
    run = state["runs"][-1]
    assert state["reconnects"] >= 1
    # Each reconnection asked for what came after the last event the page had applied.
    resumed = streams[opened_before_drop:]
    assert resumed, "the console never reconnected"
    after = f"after={quote(dropped['cursor'], safe='')}"
    assert all(after in url for url in resumed), (after, resumed)
    assert len(run["final"]) > len(at_drop["streamed"]), "nothing arrived after the drop"
    # Every delta applied exactly once adds up to the full text, and the page shows that text.
    assert run["streamed"] == run["final"]
    shown = answer_text(answer)
    assert shown.count(text) == 1
    assert squash(shown) == squash(run["final"])
    stored = [e for e in transcript(gateway) if e["role"] == "assistant"]
    assert stored[-1]["text"] == run["final"]


def test_token_is_asked_once_and_never_put_in_a_url(
    page: Page, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(token=TOKEN)
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(gateway.url + "/")

    form = page.get_by_test_id("token-form")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "locked")
    expect(page.get_by_test_id("composer-reason")).to_have_text("Enter your API token")
    expect(page.get_by_test_id("composer-input")).to_be_disabled()
    expect(page.get_by_test_id("send")).to_be_disabled()

    page.get_by_test_id("token-input").fill("wrong-token")
    page.get_by_test_id("token-input").press("Enter")
    expect(page.get_by_test_id("token-error")).to_be_visible()
    expect(form).to_be_visible()

    page.get_by_label("API token").fill(TOKEN)
    page.get_by_test_id("token-submit").click()
    expect(form).to_be_hidden()
    wait_idle(page)
    text = message("locked", 6)
    send(page, text)
    wait_idle(page)
    expect(last_answer(page).get_by_test_id("turn-text")).to_contain_text(text)

    page.reload()
    wait_idle(page)
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("turn")).to_have_count(2)

    for request in requests:
        assert TOKEN not in request.url and "wrong-token" not in request.url, request.url
    authorized = [r for r in requests if r.all_headers().get("authorization") == f"Bearer {TOKEN}"]
    paths = {r.url.removeprefix(gateway.url).split("?")[0] for r in authorized}
    assert {
        "/api/companion",
        "/api/companion/transcript",
        "/api/companion/messages",
        "/api/companion/events/stream",
    } <= paths
    assert page.evaluate("window.localStorage.length") == 0


def test_model_text_is_shown_as_text_never_as_html(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    hostile = (
        '<img src="/nowhere" onerror="window.__pwned = 1"> '
        "<script>window.__pwned = 2</script> **bold** and `code`"
    )

    send(page, hostile)

    wait_idle(page)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "finished")
    expect(answer.get_by_test_id("turn-text")).to_contain_text('<img src="/nowhere"')
    expect(answer.get_by_test_id("turn-text")).to_contain_text(
        "<script>window.__pwned = 2</script>"
    )
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("code")).to_have_text("code")
    transcript_root = page.get_by_test_id("transcript")
    expect(transcript_root.locator("img, script")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None


# Every way of cutting one stream in two (CRLF, a comment heartbeat, a multi-line `data:`, an
# `id:` alone, bare CR up to the stream's end) must parse to the same messages as the whole.
SSE_SPLITS_JS = """async (text) => {
  const { SseParser } = await import("/static/sse.js");
  const parse = (chunks) => {
    const parser = new SseParser();
    const messages = chunks.flatMap((chunk) => parser.push(chunk)).concat(parser.end());
    return JSON.stringify({ messages, last: parser.lastEventId });
  };
  const whole = parse([text]);
  const differing = [];
  for (let i = 1; i < text.length; i += 1) {
    if (parse([text.slice(0, i), text.slice(i)]) !== whole) differing.push(i);
  }
  return { whole: JSON.parse(whole), differing };
}"""


def test_event_stream_parser_survives_any_chunking(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    stream = (
        'id: 1-0\r\nevent: text_delta\r\ndata: {"text":"a"}\r\n\r\n'
        ": ping\n\n"
        "id: 2-0\nevent: text_done\ndata: first line\ndata:second line\n\n"
        "id: 3-0\n\n"
        "event: error\rdata: no id\r\r"
    )

    result = page.evaluate(SSE_SPLITS_JS, stream)

    assert result["differing"] == []
    assert result["whole"] == {
        "messages": [
            {"id": "1-0", "event": "text_delta", "data": '{"text":"a"}'},
            {"id": "2-0", "event": "text_done", "data": "first line\nsecond line"},
            {"id": None, "event": "error", "data": "no id"},
        ],
        "last": "3-0",
    }


# The Companion lives on the embedded runtime, whose host cannot be lost, so a second attempt is
# fed to the console's own modules (as the gateway serves them) rather than provoked.
SECOND_ATTEMPT_JS = """async () => {
  const { Runs } = await import("/static/runs.js");
  const { TranscriptView } = await import("/static/transcript.js");
  const scroller = document.createElement("div");
  const root = document.createElement("section");
  scroller.append(root);
  document.body.append(scroller);
  const view = new TranscriptView(root, scroller);
  const runs = new Runs(view, () => {});
  const base = { worker_id: "w", ts: 1, run_id: "r1", input_id: "i1" };
  const events = [
    { type: "user_message", text: "hi" },
    { type: "run_started", attempt: 1 },
    { type: "text_delta", text: "abandoned " },
    { type: "text_delta", text: "words" },
    { type: "run_started", attempt: 2 },
    { type: "text_delta", text: "You said: " },
  ];
  for (const event of events) runs.apply({ ...base, ...event });
  view.flush();
  const turn = root.querySelector('[data-role="assistant"]');
  const shown = () => turn.querySelector('[data-testid="turn-text"]').textContent;
  const during = { text: shown(), busy: runs.busy };
  runs.apply({ ...base, type: "text_delta", text: "hi" });
  runs.apply({ ...base, type: "text_done", text: "You said: hi" });
  runs.apply({ ...base, type: "run_finished", result: "finished" });
  view.flush();
  scroller.remove();
  return {
    during,
    text: shown(),
    note: turn.querySelector('[data-testid="turn-note"]').textContent,
    result: turn.dataset.result,
    run: runs.snapshot()[0],
    busy: runs.busy,
    turns: root.children.length,
  };
}"""


def test_second_attempt_drops_the_abandoned_text(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)

    result = page.evaluate(SECOND_ATTEMPT_JS)

    assert result["during"] == {"text": "You said: ", "busy": True}
    assert result["text"] == "You said: hi"
    assert result["note"].startswith("Attempt 2")
    assert result["result"] == "finished"
    assert result["run"]["streamed"] == result["run"]["final"] == "You said: hi"
    assert result["run"]["attempt"] == 2
    assert result["busy"] is False
    assert result["turns"] == 2
