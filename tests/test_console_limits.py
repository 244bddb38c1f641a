"""What the console of `voiceclient serve` keeps is bounded in bytes: a WebSocket session that sends megabytes of
text keeps only its newest events (and says how many earlier ones it dropped), a long string is cut, the oldest
ended sessions go when the kept logs are over the budget, and the console and the timeline page still work."""

from __future__ import annotations

import json

import aiohttp
import pytest

from voiceclient.server import RealtimeServer
from voiceclient.server import console as console_module
from voiceclient.server.event_log import LONG_STRING, PER_SESSION

pytestmark = pytest.mark.timeout(60)


async def abusive_session(server: RealtimeServer, items: int, size: int, long: int = 0) -> str:
    """A WebSocket session that adds `items` text items of `size` characters (and one of `long`); its id."""
    url = f"{server.websocket_url}/realtime?model=gpt-realtime"
    async with aiohttp.ClientSession() as http:
        # (no limit on what the client reads: the server echoes each item back, whatever its size)
        async with http.ws_connect(url, headers={"Authorization": "Bearer sk-test"}, max_msg_size=0) as ws:
            created = await ws.receive_json()
            texts = ["x" * size] * items + (["y" * long] if long else [])
            for text in texts:
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
                await ws.send_json({"type": "conversation.item.create", "item": item})
            done = 0
            while done < len(texts):  # each item's conversation.item.done, so all of it was seen
                done += (await ws.receive_json())["type"] == "conversation.item.done"
    session_id = created["session"]["id"]
    await server.history[-1].closed.wait()
    return session_id


async def test_a_session_over_the_per_session_cap_keeps_its_newest_events_and_the_console_still_renders() -> None:
    async with RealtimeServer(port=0) as server:
        session_id = await abusive_session(server, items=300, size=10_000, long=100_000)  # ~9 MB of events
        watched = server.console.watched[session_id]
        assert watched.log.size <= PER_SESSION and watched.log.not_kept > 0
        root = server.base_url.removesuffix("/v1")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{root}/console/sessions") as r:
                [summary] = (await r.json())["sessions"]
            assert summary["not_kept"] == watched.log.not_kept and summary["events"] == len(watched.log)
            assert summary["last"] == "conversation.item.done"
            async with http.get(f"{root}/console/sessions/{session_id}/events.jsonl") as r:
                lines = [json.loads(x) for x in (await r.text()).splitlines()]
            assert len(lines) == summary["events"] and lines[0]["event"]["type"] != "session.created"
            cut = [ln for ln in lines if "y" * 10 in json.dumps(ln)]
            assert cut and all("more characters not kept" in json.dumps(ln) for ln in cut)
            assert all(len(json.dumps(ln)) < 2 * LONG_STRING for ln in cut)
            async with http.get(f"{root}/console/sessions/{session_id}/events") as r:
                stream = await r.text()
            assert stream.startswith(f'event: not_kept\ndata: {{"count": {summary["not_kept"]}}}\n\n')
            assert stream.count("\ndata: {") == summary["events"] + 2  # (and not_kept's, ended's)
            assert stream.endswith("event: ended\ndata: {}\n\n")
            async with http.get(f"{root}/console/sessions/{session_id}/report.html") as r:
                assert r.status == 200 and session_id in await r.text()
            async with http.get(f"{root}/", headers={"Accept": "text/html"}) as r:
                assert r.status == 200 and "earlier events" in await r.text()


async def test_the_oldest_ended_sessions_go_when_the_console_is_over_its_budget(monkeypatch) -> None:
    monkeypatch.setattr(console_module, "BUDGET", 3 * 1024 * 1024)  # room for one whole session and a bit
    async with RealtimeServer(port=0) as server:
        ids = [await abusive_session(server, items=100, size=10_000) for _ in range(3)]  # ~3 MB of events each
        kept = list(server.console.watched)
        assert kept == ids[-len(kept) :] and 1 <= len(kept) < 3  # the newest stay
        assert server.console.size() <= console_module.BUDGET
        assert all(not s.watchers for s in server.history)  # an ended session holds no log the console dropped
