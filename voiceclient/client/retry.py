"""When and how long to retry an HTTP request, the way the official `openai` SDK does.

Retried: a refused or dropped connection, a timeout, HTTP 408, 409, 429 and 5xx (the server may override with
`x-should-retry: true|false`). The wait honours `retry-after-ms` / `retry-after` (seconds or an HTTP date) when it
is between 0 and 60 s, and is otherwise 0.5 s doubled per retry, at most 8 s, less up to 25 % of jitter.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def should_retry(self, status: int, headers: Mapping[str, str]) -> bool:
        verdict = headers.get("x-should-retry")
        if verdict == "true":
            return True
        if verdict == "false":
            return False
        return status in RETRY_STATUSES or status >= 500

    def delay(self, retries_done: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number `retries_done + 1`."""
        asked = retry_after(headers or {})
        if asked is not None and 0 < asked <= self.max_retry_after:
            return asked
        backoff = min(self.initial_delay * 2.0**retries_done, self.max_delay)
        return backoff * (1 - 0.25 * self.random())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's `retry-after-ms` or `retry-after` (seconds or an HTTP date) in seconds, if it gave one."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
