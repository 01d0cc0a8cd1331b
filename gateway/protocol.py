"""uvicorn's httptools protocol, with a sized response's head and body written in one send.

uvicorn writes the status line and headers to the socket when the app sends
`http.response.start`, and the body with the next message: two `send()` system calls for every
JSON answer, and on loopback each one also runs the receiver's side of TCP (profile of the
gateway under the `agent_server` load: the head's write alone was ~7 % of its CPU). Here the
head of a response that declares its `Content-Length` (so it has no streaming body; not for
`HEAD`, whose answer has no body write) is held until the body's write and goes out with it:
the same bytes, in one write. A stream (`text/event-stream`, chunked) is written as before, head
first, at once. Anything else the cycle does on its transport (closing it on an error, the
`100 Continue`) writes what is held first, so nothing is reordered or lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeadHolder:
    """The cycle's transport: passes every call through, except that while `holding` the next
    write is kept and joined to the one after it."""

    __slots__ = ("_held", "_transport", "holding")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.holding = False
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + bytes(data))
        elif self.holding:
            self.holding = False
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        self.holding = False
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)


def _sized(message: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


def _coalesce(cycle: RequestResponseCycle) -> None:
    holder = _HeadHolder(cycle.transport)
    cycle.transport = holder  # type: ignore[assignment]
    send = cycle.send

    async def send_once(message: Any) -> None:
        if (
            message["type"] == "http.response.start"
            and not cycle.response_started
            and cycle.scope["method"] != "HEAD"
            and _sized(message)
        ):
            holder.holding = True
            try:
                await send(message)  # the head is kept by the holder
            except BaseException:
                holder.flush()
                raise
            return
        try:
            await send(message)  # a body's write carries the head with it
        finally:
            holder.flush()  # a body message that wrote nothing (or failed) still sends the head

    cycle.send = send_once  # type: ignore[method-assign]


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=...)`: every request's cycle writes a sized answer in one send."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            _coalesce(self.cycle)


__all__ = ["CoalescingHttpToolsProtocol"]
