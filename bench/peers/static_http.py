"""A canned-answer HTTP server: the fastest thing wrk can hit here, so wrk's rate against it
is the load generator's own ceiling on this machine.

Run: python -m bench.peers.static_http --port P
"""

from __future__ import annotations

import argparse
import asyncio

_BODY = b'{"input_id":"x","cursor":"0-0"}'
_ANSWER = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


class _CannedProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (head + Content-Length body) to answer each request."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        answers = 0
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                break
            length = 0
            marker = self._buf.find(b"Content-Length:", 0, end)
            if marker < 0:
                marker = self._buf.find(b"content-length:", 0, end)
            if marker >= 0:
                line_end = self._buf.find(b"\r\n", marker)
                length = int(self._buf[marker + 15 : line_end])
            total = end + 4 + length
            if len(self._buf) < total:
                break
            del self._buf[:total]
            answers += 1
        if answers and self._transport is not None:
            self._transport.write(_ANSWER * answers)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_CannedProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
