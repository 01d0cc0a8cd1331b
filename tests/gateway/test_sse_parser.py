"""The test SSE parser itself behaves as the WHATWG rules say (so tests built on it mean it)."""

from __future__ import annotations

from tests.gateway.sse_parser import SseParser


def test_fields_multiline_data_comments_and_dispatch() -> None:
    parser = SseParser()
    stream = (
        b"\xef\xbb\xbf: ping\n\n"
        b"id: 1-0\nevent: text_delta\ndata: line one\ndata:line two\n\n"
        b"data: no id line here\r\n\r\n"
        b"id\ndata: empty id resets\rdata\r\r"
        b"retry: 1500\nretry: soon\nevent: ignored without data\n\n"
    )
    messages = parser.feed(stream)
    assert [(m.event, m.data, m.last_event_id) for m in messages] == [
        ("text_delta", "line one\nline two", "1-0"),
        ("message", "no id line here", "1-0"),  # the id buffer persists across events
        ("message", "empty id resets\n", ""),
    ]
    assert parser.comments == ["ping"]
    assert parser.retry_ms == 1500


def test_chunks_split_anywhere_including_crlf_and_utf8() -> None:
    stream = "id: 5-1\r\nevent: x\r\ndata: «héllo»\r\n\r\n".encode()
    whole = SseParser().feed(stream)
    parser = SseParser()
    pieces = [parser.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert [m for piece in pieces for m in piece] == whole
    assert whole[0].data == "«héllo»"


def test_nul_in_id_is_ignored_and_comment_blocks_with_id_are_counted() -> None:
    parser = SseParser()
    parser.feed(b"id: 1-0\ndata: a\n\nid: bad\x00id\ndata: b\n\n: ping\nid: 2-0\n\n")
    assert [m.last_event_id for m in parser.messages] == ["1-0", "1-0"]
    assert parser.comment_blocks_with_id == 1
