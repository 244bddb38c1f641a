"""Load tests of a Realtime-compatible endpoint on Locust: users that make real voice calls (`pip install
'voiceclient[locust]'`).

    python -m voiceclient.locust --headless -u 4 -r 2 -t 30s --host http://127.0.0.1:8000

or a locustfile of your own with a subclass of `RealtimeUser` (docs/load-testing.md). Importing this package imports
Locust, which monkey-patches the standard library for gevent: import it in a locustfile, not in an asyncio program.
"""

from __future__ import annotations

from voiceclient.locust.calls import CallPlan, CallReport, Figure, place_call
from voiceclient.locust.loop import EventLoopThread, shared_loop
from voiceclient.locust.user import RealtimeUser

__all__ = ["CallPlan", "CallReport", "EventLoopThread", "Figure", "RealtimeUser", "place_call", "shared_loop"]
