"""`voiceclient serve --workers 2` as a user runs it: one port, calls spread over two worker processes, each call's
routes, sideband and console reaching its worker, a dead worker left behind, every call told at the stop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource
from voiceclient.audio.sources import load_audio
from voiceclient.client.options import Recording

from .conftest import FIXTURES, ctrl_c_as_in_a_terminal, read_events

pytestmark = pytest.mark.timeout(90)
SPEECH = FIXTURES / "speech" / "sentence_1.wav"
RATE = 24_000


class Serve:
    """A `voiceclient serve --workers 2` process and what it said."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url  # http://127.0.0.1:PORT/v1
        self.root = url.removesuffix("/v1")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.root + path, timeout=10) as resp:
            return json.loads(resp.read())

    async def get_async(self, path: str) -> Any:
        return await asyncio.to_thread(self.get, path)

    async def read(self, path: str) -> bytes:
        def read() -> bytes:
            with urllib.request.urlopen(self.root + path, timeout=10) as resp:
                return bytes(resp.read())

        return await asyncio.to_thread(read)

    async def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.proc.communicate(), 20)
        return self.proc.returncode or 0, err.decode()


@contextlib.asynccontextmanager
async def serve_with_workers(*args: str) -> AsyncIterator[Serve]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--workers", "2", "--no-speech"),
        *("--vad", "energy", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "listening on" in line, line
        yield Serve(proc, line.split("listening on ")[1].split()[0])
    finally:
        if proc.returncode is None:  # a failed test leaves no server (nor workers) behind
            pids = []
            with contextlib.suppress(Exception):
                pids = [w["pid"] for w in Serve(proc, "http://x/v1").get("/")["workers"]]
            proc.kill()
            await proc.wait()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def similarity(sent: np.ndarray, heard: np.ndarray) -> float:
    """Normalised cross-correlation at the best lag (1.0: the same sound)."""
    a, b = sent.astype(np.float64), heard.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(a.size + b.size)))
    xcorr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    return float(xcorr.max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


async def webrtc_echo(url: str, out: Path) -> tuple[str, float]:
    """One spoken turn over WebRTC through the front; (the call's id, how like the speech its echo is)."""
    session = SessionConfig.model_validate(
        {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}
    )
    settings = ClientSettings(base_url=url, api_key="sk-test", connect_timeout=30)
    async with VoiceCall(settings, session, source=WavSource(SPEECH), recording=Recording(output_wav=out)) as call:
        assert await call.run_until_idle(1.5, 40) == "idle"
        call_id = call.call_id
    assert call_id is not None
    return call_id, similarity(load_audio(SPEECH, RATE), load_audio(out, RATE))


async def websocket_echo(url: str) -> tuple[str, float]:
    """One spoken turn with the official SDK over the WebSocket through the front; (session id, similarity)."""
    from openai import AsyncOpenAI

    speech = load_audio(SPEECH, RATE)
    sent = np.concatenate([np.zeros(RATE // 4, np.int16), speech, np.zeros(RATE, np.int16)])
    client = AsyncOpenAI(api_key="sk-test", base_url=url)
    try:
        async with client.realtime.connect(model="gpt-realtime") as conn:
            created = await asyncio.wait_for(conn.recv(), 10)
            assert created.type == "session.created"
            for i in range(0, sent.size, RATE // 10):
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(sent[i : i + RATE // 10].tobytes()).decode()
                )
            audio = b""
            while True:
                event = await asyncio.wait_for(conn.recv(), 20)
                if event.type == "response.output_audio.delta":
                    audio += base64.b64decode(event.delta)
                elif event.type == "response.done":
                    break
            return str(created.session.id), similarity(speech, np.frombuffer(audio, "<i2"))
    finally:
        await client.close()


async def test_calls_over_both_transports_are_answered_and_land_on_both_workers(tmp_path: Path) -> None:
    async with serve_with_workers("--record-dir", str(tmp_path / "recordings")) as serve:
        workers = {w["pid"] for w in (await serve.get_async("/"))["workers"]}
        assert len(workers) == 2
        results = await asyncio.gather(
            *(webrtc_echo(serve.url, tmp_path / f"out{i}.wav") for i in range(2)),
            *(websocket_echo(serve.url) for _ in range(2)),
        )
        for session_id, alike in results:
            assert alike > 0.8, (session_id, alike)  # each heard its own speech back
        listed = {s["id"]: s for s in (await serve.get_async("/console/sessions"))["sessions"]}
        ids = [session_id for session_id, _ in results]
        assert set(ids) <= set(listed)
        assert {listed[i]["worker"] for i in ids} == workers  # both workers took calls
        assert [listed[i]["transport"] for i in ids] == ["webrtc", "webrtc", "websocket", "websocket"]
        # A session's console pages come from its worker, whichever one that is.
        for session_id in ids:
            log = await serve.read(f"/console/sessions/{session_id}/events.jsonl")
            types = [json.loads(line)["event"]["type"] for line in log.decode().splitlines()]
            assert "response.done" in types
        for session_id in ids[:2]:  # and a WebRTC call's recording, from the worker's --record-dir
            wav = await serve.read(f"/console/sessions/{session_id}/conversation.wav")
            assert wav[:4] == b"RIFF" and len(wav) > 2 * 2 * RATE  # stereo 16-bit, over a second
        code, err = await serve.stop()
        assert code == 0, err
        assert err.strip().splitlines()[-1] == "voiceclient: server stopped"
    for pid in workers:  # the workers stopped with their front
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


async def test_the_sideband_and_the_hangup_of_a_call_reach_its_worker() -> None:
    from openai import AsyncOpenAI

    async with serve_with_workers() as serve:
        settings = ClientSettings(base_url=serve.url, api_key="sk-test")
        client = AsyncOpenAI(api_key="sk-backend", base_url=serve.url)
        calls = [VoiceCall(settings), VoiceCall(settings)]  # one on each worker: the second is on the other
        async with calls[0] as first, calls[1] as second:
            owners = {s["id"]: s["worker"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
            assert owners[first.call_id] != owners[second.call_id]
            for call in (first, second):
                stream = call.events()
                async with client.realtime.connect(call_id=call.call_id) as sideband:
                    assert (await asyncio.wait_for(sideband.recv(), 10)).type == "session.created"
                    await sideband.conversation.item.create(
                        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
                    )
                    await sideband.response.create()
                    while (await asyncio.wait_for(sideband.recv(), 10)).type != "response.done":
                        pass
                said = await asyncio.wait_for(stream.next_of("response.output_audio_transcript.done"), 10)
                assert said.transcript == "You said: hi"  # the call heard what its sideband asked for
            hangup = f"{serve.url}/realtime/calls/{first.call_id}/hangup"
            request = urllib.request.Request(hangup, method="POST", headers={"Authorization": "Bearer sk-test"})
            assert (await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)).status == 200
            for _ in range(100):  # the first call ended on its worker, the second goes on on the other
                ended = {s["id"]: s["ended"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
                if ended[first.call_id]:
                    break
                await asyncio.sleep(0.1)
            assert ended[first.call_id] and not ended[second.call_id]
            with pytest.raises(urllib.error.HTTPError) as again:  # gone: the worker's own 404
                await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
            assert again.value.code == 404 and json.loads(again.value.read())["error"]["code"] == "call_not_found"
        await client.close()
        code, err = await serve.stop()
        assert code == 0, err


async def test_a_killed_worker_leaves_the_front_serving_new_calls(tmp_path: Path) -> None:
    async with serve_with_workers() as serve:
        pids = [w["pid"] for w in (await serve.get_async("/"))["workers"]]
        os.kill(pids[0], signal.SIGKILL)
        for _ in range(100):
            if len((await serve.get_async("/"))["workers"]) == 1:
                break
            await asyncio.sleep(0.1)
        assert [w["pid"] for w in (await serve.get_async("/"))["workers"]] == pids[1:]
        results = await asyncio.gather(webrtc_echo(serve.url, tmp_path / "out.wav"), websocket_echo(serve.url))
        assert all(alike > 0.8 for _, alike in results), results
        listed = {s["id"]: s["worker"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
        assert {listed[session_id] for session_id, _ in results} == {pids[1]}
        code, err = await serve.stop()
        assert code == 0, err
        died = [line for line in err.splitlines() if f"pid {pids[0]}" in line]
        assert len(died) == 1 and "exited" in died[0], err  # one line says so


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_stopping_the_front_tells_every_call_and_stops_every_worker(tmp_path: Path, signum: int) -> None:
    """Ctrl-C (the front's alone: the workers are not in the terminal's process group) or SIGTERM."""
    from openai import AsyncOpenAI

    async with serve_with_workers() as serve:
        pids = [w["pid"] for w in (await serve.get_async("/"))["workers"]]
        client = AsyncOpenAI(api_key="sk-test", base_url=serve.url)
        events = tmp_path / "events.jsonl"
        settings = ClientSettings(base_url=serve.url, api_key="sk-test", transport="webrtc")
        async with client.realtime.connect(model="gpt-realtime") as conn:  # a WebSocket session on one worker
            assert (await asyncio.wait_for(conn.recv(), 10)).type == "session.created"
            async with VoiceCall(settings, recording=Recording(events_jsonl=events)) as call:  # WebRTC on the other
                listed = {s["worker"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
                assert listed == set(pids)
                serve.proc.send_signal(signum)
                error = await asyncio.wait_for(conn.recv(), 10)
                assert error.type == "error" and error.error.code == "server_shutting_down"
                await asyncio.wait_for(call.ended(), 15)
        await client.close()
        _, err = await asyncio.wait_for(serve.proc.communicate(), 20)
        assert serve.proc.returncode == 0, err.decode()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    told = [e["event"] for e in read_events(events) if e["event"].get("type") == "error"]  # (every line JSON)
    assert [e["error"]["code"] for e in told] == ["server_shutting_down"]


async def test_an_ephemeral_key_works_on_the_worker_that_issued_it() -> None:
    """An `ek_` is its worker's: the call made with it goes there, not to the least loaded worker."""
    from openai import AsyncOpenAI

    async with serve_with_workers() as serve:
        client = AsyncOpenAI(api_key="sk-test", base_url=serve.url)
        keys = [(await client.realtime.client_secrets.create()).value for _ in range(2)]
        async with client.realtime.connect(model="gpt-realtime") as busy:  # now the issuer is the busier worker
            created = await asyncio.wait_for(busy.recv(), 10)
            settings = ClientSettings(base_url=serve.url, api_key=keys[0])
            async with VoiceCall(settings) as call:  # WebRTC, the raw SDP a browser posts with an ek_
                on_key = AsyncOpenAI(api_key=keys[1], base_url=serve.url)
                async with on_key.realtime.connect(model="gpt-realtime") as conn:  # and a WebSocket session
                    assert (await asyncio.wait_for(conn.recv(), 10)).type == "session.created"
                    listed = (await serve.get_async("/console/sessions"))["sessions"]
                    owners = {s["id"]: s["worker"] for s in listed}
                    assert len(owners) == 3
                    assert len(set(owners.values())) == 1 and owners[call.call_id] == owners[created.session.id]
                await on_key.close()
        await client.close()
        code, err = await serve.stop()
        assert code == 0, err


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_gpt_live_session_is_attached_to_and_hung_up_through_the_front(transport: str) -> None:
    from openai import AsyncOpenAI

    async with serve_with_workers() as serve:
        client = AsyncOpenAI(api_key="sk-test", base_url=serve.url)
        async with client.realtime.connect(model="gpt-realtime") as busy:  # the live session goes to the other worker
            created = await asyncio.wait_for(busy.recv(), 10)
            settings = ClientSettings(base_url=serve.url, api_key="sk-test", transport=transport)  # type: ignore[arg-type]
            session = SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1"})
            async with VoiceCall(settings, session, source=WavSource(SPEECH)) as call:
                assert call.call_id is not None
                events = call.events()
                owners = {s["id"]: s["worker"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
                assert owners[call.call_id] != owners[created.session.id]
                async with client.live.sideband.connect(session_id=call.call_id) as sideband:
                    first = await asyncio.wait_for(sideband.recv(), 10)
                    assert first.type == "session.started" and first.session.id == call.call_id
                    said = ""
                    while "Echo of" not in said:  # the session's words, seen from the side
                        event = await asyncio.wait_for(sideband.recv(), 30)
                        if event.type == "session.output_transcript.delta":
                            said += event.delta
                    await client.live.sessions.hangup(call.call_id)
                    while (event := await asyncio.wait_for(sideband.recv(), 10)).type != "session.closed":
                        pass
                    assert event.reason == "close_requested"
                ended = await events.next_of("session.closed", timeout=10)
                assert ended.reason == "close_requested"
        await client.close()
        code, err = await serve.stop()
        assert code == 0, err


@pytest.mark.parametrize("workers", ["0", "two"])
async def test_a_bad_worker_count_is_a_usage_error_in_one_line(workers: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--workers", workers),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and not out
    assert err.decode().strip().splitlines() == [
        f"voiceclient: error: --workers takes a whole number from 1, or auto (got {workers!r})"
    ]


async def test_the_console_streams_a_live_session_of_either_worker_through_the_front() -> None:
    import aiohttp
    from openai import AsyncOpenAI

    async with serve_with_workers() as serve:
        client = AsyncOpenAI(api_key="sk-test", base_url=serve.url)
        async with (
            client.realtime.connect(model="gpt-realtime") as one,
            client.realtime.connect(model="gpt-realtime") as two,
            aiohttp.ClientSession() as http,
        ):
            ids = [(await asyncio.wait_for(conn.recv(), 10)).session.id for conn in (one, two)]
            listed = {s["id"]: s["worker"] for s in (await serve.get_async("/console/sessions"))["sessions"]}
            assert len({listed[i] for i in ids}) == 2
            for conn, session_id in zip((one, two), ids):
                async with http.get(f"{serve.root}/console/sessions/{session_id}/events") as stream:
                    text = f"hello {session_id}"
                    await conn.conversation.item.create(
                        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
                    )
                    seen = ""
                    while text not in seen:  # the event as it happens, not once the stream ends
                        seen += (await asyncio.wait_for(stream.content.readline(), 10)).decode()
        await client.close()
        code, err = await serve.stop()
        assert code == 0, err


async def test_a_refused_websocket_session_keeps_its_error_and_close_code_through_the_front() -> None:
    import websockets

    async with serve_with_workers("--api-key", "sk-right") as serve:
        url = serve.url.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer sk-wrong"}) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 3000 and ws.close_reason == "invalid_request_error.invalid_api_key"
        code, err = await serve.stop()
        assert code == 0, err
