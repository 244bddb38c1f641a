"""What `serve` keeps of ended sessions (`RealtimeServer.history`) is bounded in bytes: sessions that each sent a
5 MB text item over a real WebSocket leave only the newest within `HISTORY_BUDGET`, the newest whole, a live one
never dropped; and nothing else (the console, watchers, the live dicts) keeps an ended session, so what the server
holds stops growing once the budget is reached."""

from __future__ import annotations

import base64
import gc
import tracemalloc
import weakref

import aiohttp
import pytest

from voiceclient.server import RealtimeServer
from voiceclient.server import app as app_module
from voiceclient.server.session import ServerSession

from .test_console_limits import abusive_session

pytestmark = pytest.mark.timeout(120)
MB5 = 5_000_000


def ended(server: RealtimeServer) -> list[ServerSession]:
    return [s for s in server.history if s.closed.is_set()]


def kept_bytes(server: RealtimeServer) -> int:
    return sum(s.retained_bytes for s in ended(server))


async def test_ended_sessions_are_kept_within_the_budget_newest_first_and_nothing_else_keeps_them() -> None:
    budget = app_module.HISTORY_BUDGET
    per_session = MB5
    reached = budget // per_session + 1  # sessions after which the budget is full
    total = reached + 8
    async with RealtimeServer(port=0) as server:
        refs: list[weakref.ref[ServerSession]] = []
        ids: list[str] = []
        tracemalloc.start()
        try:
            traced: list[int] = []
            for _ in range(total):
                ids.append(await abusive_session(server, items=1, size=per_session))
                refs.append(weakref.ref(server.history[-1]))
                gc.collect()
                traced.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        kept = [s.id for s in server.history]
        assert kept == ids[-len(kept) :] and len(kept) < total  # the newest, in order
        assert per_session * len(kept) <= kept_bytes(server) <= budget
        assert kept_bytes(server) + per_session > budget  # no more dropped than needed
        assert all(s.retained_bytes >= per_session for s in server.history)
        newest = server.history[-1]  # whole
        assert len(newest.conversation.items[0]["content"][0]["text"]) == per_session
        # Nothing else holds the sessions dropped: not the console (which still lists them), nor anything else.
        assert [r() is not None for r in refs] == [i in kept for i in ids]
        assert list(server.console.watched)[-len(kept) :] == kept
        assert not server.calls and not server.sessions
        # What the server holds is flat once the budget is reached (one session's worth of slack, for the
        # sessions kept changing).
        assert max(traced[reached:]) - min(traced[reached:]) < 1.5 * per_session


async def test_the_newest_ended_session_is_kept_whole_even_over_the_budget(monkeypatch) -> None:
    monkeypatch.setattr(app_module, "HISTORY_BUDGET", 1024 * 1024)
    async with RealtimeServer(port=0) as server:
        await abusive_session(server, items=1, size=2 * 1024 * 1024)
        second = await abusive_session(server, items=1, size=2 * 1024 * 1024)
        assert [s.id for s in server.history] == [second]
        [item] = server.history[-1].conversation.items
        assert len(item["content"][0]["text"]) == 2 * 1024 * 1024


async def test_a_live_session_stays_in_the_history_however_much_the_ended_ones_keep(monkeypatch) -> None:
    monkeypatch.setattr(app_module, "HISTORY_BUDGET", 1024 * 1024)
    async with RealtimeServer(port=0) as server, aiohttp.ClientSession() as http:
        url = f"{server.websocket_url}/realtime?model=gpt-realtime"
        async with http.ws_connect(url, headers={"Authorization": "Bearer sk-test"}) as ws:
            live_id = (await ws.receive_json())["session"]["id"]
            ids = [await abusive_session(server, items=1, size=1024 * 1024) for _ in range(3)]
            assert [s.id for s in server.history] == [live_id, ids[-1]]


async def test_audio_counts_and_the_input_buffer_left_uncommitted_is_released_at_the_end() -> None:
    second = base64.b64encode(b"\x01\x00" * 24000).decode()  # 1 s of PCM16 at 24 kHz
    async with RealtimeServer(port=0) as server, aiohttp.ClientSession() as http:
        url = f"{server.websocket_url}/realtime?model=gpt-realtime"
        async with http.ws_connect(url, headers={"Authorization": "Bearer sk-test"}) as ws:
            await ws.receive_json()
            session = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
            await ws.send_json({"type": "session.update", "session": session})
            for _ in range(20):
                await ws.send_json({"type": "input_audio_buffer.append", "audio": second})
            await ws.send_json({"type": "input_audio_buffer.commit"})
            for _ in range(30):  # after the commit, left in the buffer
                await ws.send_json({"type": "input_audio_buffer.append", "audio": second})
            await ws.send_json({"type": "response.cancel"})  # (nothing to cancel: an error, a round trip)
            while (await ws.receive_json())["type"] != "error":
                pass
        call = server.history[-1]
        await call.closed.wait()
        [heard] = call.conversation.user_audio()
        assert heard.size == 20 * 24000
        assert call.turns.buffered == 0 and not call.turns.buffer
        assert 20 * 24000 * 2 <= call.retained_bytes < 21 * 24000 * 2
