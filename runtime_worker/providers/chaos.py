"""The `chaos` provider: answers like `echo`, and honours failure hooks for fault tests.

Selected only by name (`YOI_PROVIDER=chaos`, or `provider = "chaos"` in a profile), never by
default: a hook is a test's deliberate choice, not something a person can type by accident.
User texts starting with a hook:

| prefix      | behaviour                                                              |
| ----------- | ---------------------------------------------------------------------- |
| `/fail-mid` | one piece, then `ProviderError` (not retryable)                        |
| `/fail`     | `ProviderError` (not retryable) before any piece                       |
| `/crash`    | `os._exit(70)`: the host process dies, as if the input killed it       |
| `/slow`     | every pause is at least 200 ms                                         |
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from runtime_worker.providers.base import StreamItem, TurnRequest
from runtime_worker.providers.echo import EchoProvider, last_user_text
from shared.errors import ProviderError

CRASH_EXIT_CODE = 70
SLOW_DELAY_MS = 200


class ChaosProvider(EchoProvider):
    """`echo` plus the hooks in the module docstring."""

    name = "chaos"

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        hook = last_user_text(request).lstrip()
        if hook.startswith("/crash"):
            os._exit(CRASH_EXIT_CODE)
        if hook.startswith("/fail-mid"):
            fail_after: int | None = 1
        elif hook.startswith("/fail"):
            raise ProviderError("chaos provider asked to fail", retryable=False)
        else:
            fail_after = None
        delay_ms = max(self.delay_ms, SLOW_DELAY_MS) if hook.startswith("/slow") else self.delay_ms
        async for item in self.echo(request, delay_ms, fail_after=fail_after):
            yield item
