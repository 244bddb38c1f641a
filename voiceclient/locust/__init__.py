"""Load tests of a Realtime-compatible endpoint on Locust: users that make real voice calls (`pip install
'voiceclient[locust]'`).

    python -m voiceclient.locust --headless -u 4 -r 2 -t 30s --host http://127.0.0.1:8000

or a locustfile of your own with a subclass of `RealtimeUser` (docs/load-testing.md). `RealtimeUser` imports Locust,
which monkey-patches the standard library for gevent: use it in a locustfile, not in an asyncio program. The names
are imported on first use, so `voiceclient.locust.calls` (the call and its figures) needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceclient.lazy import lazy_names

if TYPE_CHECKING:
    from voiceclient.locust.calls import CallPlan, CallReport, Figure, place_call
    from voiceclient.locust.loop import EventLoopThread, shared_loop
    from voiceclient.locust.user import RealtimeUser

_WHERE = {
    "voiceclient.locust.calls": ["CallPlan", "CallReport", "Figure", "place_call"],
    "voiceclient.locust.loop": ["EventLoopThread", "shared_loop"],
    "voiceclient.locust.user": ["RealtimeUser"],
}
__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = ["CallPlan", "CallReport", "EventLoopThread", "Figure", "RealtimeUser", "place_call", "shared_loop"]
