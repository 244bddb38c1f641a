"""`voiceclient call / serve / demo` as a user runs them: real processes, real exit codes, files checked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from voiceclient import ClientSettings, VoiceCall, WavSource
from voiceclient.client.options import Recording
from voiceclient.errors import ConnectionLostError
from voiceclient.server import RealtimeServer
from voiceclient.server.faults import FaultPlan, FaultSpec
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, ctrl_c_as_in_a_terminal, read_events, read_wav

pytestmark = pytest.mark.timeout(60)
TOOLS = '''
from voiceclient import tool

@tool
def get_weather(city: str, unit: str = "celsius") -> dict:
    """Weather for a city."""
    return {"city": city, "forecast": "sunny", "temperature": 22, "unit": unit}
'''


async def run_cli(*args: str, timeout: float = 45, env: dict | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceclient",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:  # a command that did not end leaves nothing behind
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


async def start_serve(*args: str, **kw: object) -> tuple[asyncio.subprocess.Process, str]:
    """`voiceclient serve --port 0 ARGS` in the background, and the base URL it says it listens on."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voiceclient", "serve", "--port", "0", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kw,  # type: ignore[arg-type]
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, line.split("listening on ")[1].split()[0]


async def test_call_runs_tools_and_writes_every_file(tmp_path: Path) -> None:
    tools = tmp_path / "weather_tools.py"
    tools.write_text(TOOLS)
    files = {"out": tmp_path / "out.wav", "rec": tmp_path / "rec.wav", "events": tmp_path / "events.jsonl"}
    session = tmp_path / "session.toml"
    session.write_text('[session.audio.input.turn_detection]\ntype = "server_vad"\nsilence_duration_ms = 800\n')
    async with RealtimeServer(
        port=0, responder=ScenarioResponder.from_file(FIXTURES / "scenarios" / "tools.toml")
    ) as server:
        code, out, err = await run_cli(
            "call",
            "--input",
            str(FIXTURES / "hello.wav"),
            "--output",
            str(files["out"]),
            "--record",
            str(files["rec"]),
            "--events",
            str(files["events"]),
            "--tools",
            str(tools),
            "--session",
            str(session),
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-test",
            "--idle-exit",
            "1",
        )
    assert code == 0, err
    assert "tool: get_weather" in out and "assistant: Paris is sunny, 22 degrees." in out
    assert read_wav(files["out"])[1:] == (24000, 1) and read_wav(files["rec"])[1:] == (24000, 2)
    log = read_events(files["events"])
    assert log[0]["dir"] == "server" and log[0]["event"]["type"] == "session.created"
    assert all(set(line) == {"t", "dir", "event"} for line in log)
    assert [e["t"] for e in log] == sorted(e["t"] for e in log)
    assert "sk-test" not in files["events"].read_text()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--set", "audio.output.speed=9"], 2, "session.audio.output.speed: 9 is not allowed"),
        (["--idle-exit", "0"], 2, "--idle-exit: 0 is not allowed"),
        (["--tools", "no_such_module_for_tools"], 2, "cannot import"),
        (["--input", "/nonexistent.wav"], 2, "audio file not found"),
        (["--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"], 4, "POST http://127.0.0.1:9/v1/realtime/calls"),
        (["--max-retries", "-1"], 2, "max_retries: -1 is not allowed"),
        (["--base-url", "htp://127.0.0.1:9/v1"], 2, 'base_url: "htp://127.0.0.1:9/v1" is not an http:// or https://'),
        (["--base-url", "127.0.0.1:9/v1"], 2, 'base_url: "127.0.0.1:9/v1" is not an http:// or https:// URL'),
        (["--reconnect", "-1"], 2, "--reconnect: -1 is not allowed"),
        (["--recycle-after", "0"], 2, "--recycle-after: 0 is not allowed"),
    ],
)
async def test_failures_exit_with_distinct_codes_and_one_line(args, code, message, tmp_path) -> None:
    base = ["call", "--input", str(FIXTURES / "hello.wav"), "--api-key", "sk-x", "--base-url", "http://127.0.0.1:9/v1"]
    got, _out, err = await run_cli(*base, *args)
    assert got == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voiceclient: error: ") and message in lines[0]


async def test_a_base_url_without_v1_is_named_with_the_fix(tmp_path: Path) -> None:
    """A 404 from the create-call says where it posted and the usual fix; the WebSocket's handshake likewise."""
    async with RealtimeServer(port=0) as server:
        base = server.base_url.removesuffix("/v1")
        for transport, request in (("webrtc", f"POST {base}/realtime/calls"), ("websocket", "GET ws://")):
            code, _out, err = await run_cli(
                "call", "--input", str(FIXTURES / "hello.wav"), "--api-key", "k", "--base-url", base,
                "--transport", transport,
            )  # fmt: skip
            assert code == 5, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"voiceclient: error: {request}"), err
            assert lines[0].endswith(f"Not Found (HTTP 404); the base URL usually ends in /v1: --base-url {base}/v1"), (
                err
            )


async def test_no_api_key_says_how_to_give_one_before_any_request() -> None:
    code, _out, err = await run_cli(
        "call", "--input", str(FIXTURES / "hello.wav"), "--base-url", "http://127.0.0.1:9/v1"
    )
    assert code == 3, err
    assert err.strip() == (
        "voiceclient: error: no API key: pass --api-key (any value works for voiceclient serve) or set OPENAI_API_KEY"
    )


async def test_when_neither_webrtc_nor_the_websocket_connects_both_reasons_are_given() -> None:
    """auto: ICE gets no answer (UDP dropped), then the WebSocket is refused: one line with both reasons, and the
    exit code of a connection failure, not the WebSocket's HTTP status alone."""
    faults = FaultPlan(
        [FaultSpec(action="unreachable", call=1), FaultSpec(action="http_status", status=503, call=2, times=5)]
    )
    async with RealtimeServer(port=0, faults=faults) as server:
        code, _out, err = await run_cli(
            "call", "--input", str(FIXTURES / "hello.wav"), "--api-key", "k", "--base-url", server.base_url
        )
    assert code == 4, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "voiceclient: error: could not connect: WebRTC: the WebRTC connection did not come up within 3 s"
    ), err
    assert f"; WebSocket fallback: GET {server.websocket_url}/realtime?model=gpt-realtime: " in lines[0], err
    assert lines[0].endswith("(HTTP 503)"), err


async def test_serve_prints_a_try_line_with_the_key_it_requires() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--api-key", "sk-mine",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(2)]
        assert "try: voiceclient call --base-url http://127.0.0.1:" in lines[1]
        assert "--api-key sk-mine --input IN.wav" in lines[1], lines
    finally:
        proc.kill()
        await proc.wait()


async def test_an_answer_that_does_not_fit_the_offer_exits_4_with_one_line() -> None:
    """A server whose 201 carries an SDP answer without our media sections (seen from misbehaving proxies)."""
    from aiohttp import web

    async def create(request: web.Request) -> web.Response:
        return web.Response(
            status=201,
            text="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
            content_type="application/sdp",
            headers={"Location": "/v1/realtime/calls/rtc_bad"},
        )

    async def hangup(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/realtime/calls", create)
    app.router.add_post("/v1/realtime/calls/{id}/hangup", hangup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        code, _, err = await run_cli(
            "call", "--input", str(FIXTURES / "hello.wav"), "--base-url", url, "--api-key", "sk-x"
        )
    finally:
        await runner.cleanup()
    lines = err.strip().splitlines()
    assert code == 4 and len(lines) == 1, err
    assert lines[0] == (
        "voiceclient: error: the server's SDP answer does not fit our offer: Media sections in "
        "answer do not match offer"
    )


async def test_authentication_failure_exits_3() -> None:
    async with RealtimeServer(port=0, api_key="sk-right") as server:
        code, _, err = await run_cli(
            "call", "--input", str(FIXTURES / "hello.wav"), "--base-url", server.base_url, "--api-key", "sk-wrong"
        )
    assert code == 3 and "Incorrect API key" in err and "sk-wrong" not in err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_ctrl_c_or_sigterm_hangs_up_and_leaves_valid_files(tmp_path: Path, signum: int, code: int) -> None:
    """SIGTERM (CI timeouts, docker stop, systemd) ends a call as Ctrl-C does: it once hung the process."""
    rec, events = tmp_path / "rec.wav", tmp_path / "events.jsonl"
    async with RealtimeServer(port=0) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voiceclient",
            "call",
            "--input",
            str(FIXTURES / "long_tone_48k.wav"),
            "--record",
            str(rec),
            "--events",
            str(events),
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-x",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=ctrl_c_as_in_a_terminal,
        )
        assert proc.stdout is not None
        while b"connected" not in await asyncio.wait_for(proc.stdout.readline(), 20):
            pass
        await asyncio.sleep(1.0)
        proc.send_signal(signum)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == code, err.decode()
        stopped = "voiceclient: interrupted; hung up, files written so far are complete"
        assert err.decode().strip().splitlines() == [stopped]
        for _ in range(100):  # the client hung up on its way out
            if not server.calls:
                break
            await asyncio.sleep(0.05)
        assert not server.calls
    data, rate, channels = read_wav(rec)
    assert channels == 2 and data.shape[0] >= rate * 0.9
    assert all(json.loads(line) for line in events.read_text().splitlines())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_serve_command_serves_until_stopped(tmp_path: Path, signum: int) -> None:
    scenario = str(FIXTURES / "scenarios" / "long_reply.toml")
    proc, url = await start_serve("--vad", "energy", "--scenario", scenario, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        code, out, err = await run_cli(
            "call",
            "--input",
            str(FIXTURES / "tone_440_16k_stereo.wav"),
            "--base-url",
            url,
            "--api-key",
            "sk-x",
            "--idle-exit",
            "0.5",
            "--max-duration",
            "8",
        )
        assert code == 0, err
        assert "This is a long answer" in out
        proc.send_signal(signum)
        _, stopped = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, stopped.decode()
        assert stopped.decode().strip().splitlines()[-1] == "voiceclient: server stopped"
    finally:
        if proc.returncode is None:  # a failed test leaves no server behind
            proc.kill()
            await proc.wait()


async def test_call_gives_up_on_an_unreachable_server_at_the_connect_deadline(tmp_path: Path) -> None:
    """`serve --fault unreachable` answers in the real shape, but no ICE check gets an answer (UDP dropped on the
    way): `call --transport webrtc` says so in one line within its deadline (default 5 s), exits 4, and hangs the
    call up; `call` (auto) goes on over the WebSocket after 3 s and says so."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceclient",
        "-v",
        "serve",
        "--port",
        "0",
        "--no-speech",
        "--fault",
        "unreachable",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.split("listening on ")[1].split()[0]
        events = tmp_path / "events.jsonl"
        started = time.monotonic()
        code, out, err = await run_cli(
            "call",
            "--transport",
            "webrtc",
            "--input",
            str(FIXTURES / "hello.wav"),
            "--base-url",
            url,
            "--api-key",
            "sk-x",
            "--events",
            str(events),
        )
        elapsed = time.monotonic() - started
        assert code == 4, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert "did not come up within 5 s" in lines[0] and "blocks UDP" in lines[0] and "127.0.0.1:" in lines[0]
        assert elapsed < 15  # 5 s of ICE plus the start of a Python process, not the 21 s it was
        assert all(json.loads(line) for line in events.read_text().splitlines())
        code, out, err = await run_cli(
            "call",
            "--input",
            str(FIXTURES / "tone_440_16k_stereo.wav"),
            "--base-url",
            url,
            "--api-key",
            "sk-x",
            "--idle-exit",
            "1",
        )
        assert code == 0, err
        assert "WebRTC did not connect (the WebRTC connection did not come up within 3 s" in out + err
        assert "the call goes on over WebSocket" in out + err and "sess_" in out
        proc.send_signal(signal.SIGINT)
        _, served = await asyncio.wait_for(proc.communicate(), 10)
        assert "ended" in served.decode()  # the client hung the call up on its way out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_rejects_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[turns]]\ntone = { frequency = -5, seconds = 1 }\n")
    code, _, err = await run_cli("serve", "--port", "0", "--scenario", str(bad))
    assert code == 2 and "turns.0.tone.frequency" in err
    code, _, err = await run_cli("serve", "--port", "0", "--max-call-seconds", "0")
    assert code == 2 and "--max-call-seconds: 0 is not allowed" in err
    code, _, err = await run_cli("serve", "--port", "0", "--fault", "drop_connection")
    assert code == 2 and "drop_connection needs at_seconds or after_turns" in err


@pytest.mark.parametrize("port", ["99999", "-1"])
async def test_serve_rejects_a_port_out_of_range_with_one_line(port: str) -> None:
    code, _, err = await run_cli("serve", "--no-speech", "--port", port)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == f"voiceclient: error: --port: {port} is not allowed; must be 0 to 65535 (0: any free port)"


@pytest.mark.parametrize("transport, over", [("auto", "WebRTC"), ("websocket", "WebSocket")])
async def test_demo_transcribes_calls_the_tool_and_summarises(tmp_path: Path, transport: str, over: str) -> None:
    code, out, err = await run_cli("demo", "--output-dir", str(tmp_path / "demo"), "--transport", transport, timeout=55)
    assert code == 0, err
    assert f" over {over}, call " in out
    assert "tool: get_weather" in out
    assert "assistant: It is sunny and 22 degrees in Paris." in out
    assert "assistant: You are welcome. Goodbye!" in out
    assert "2 user, 3 assistant responses" in out
    assert "latency per turn" in out
    for name in ("conversation.wav", "assistant.wav", "events.jsonl"):
        assert (tmp_path / "demo" / name).stat().st_size > 1000


@pytest.mark.parametrize(
    "flag, expected",
    [
        ([], "did not approve"),
        (["--approve", "always"], "sent to ada"),
        (["--approve", "always", "--transport", "websocket"], "sent to ada"),
    ],
)
async def test_call_approval_policy_flag(flag: list[str], expected: str, tmp_path: Path) -> None:
    tools = tmp_path / "mail.py"
    tools.write_text(
        "from voiceclient import tool\n@tool(needs_approval=True)\n"
        "def send_email(to: str, body: str) -> str:\n    '''Send.'''\n    return f'sent to {to}'\n"
    )
    config = tmp_path / "c.toml"
    config.write_text('[session.audio.input.turn_detection]\ntype = "server_vad"\nsilence_duration_ms = 800\n')
    async with RealtimeServer(
        port=0, responder=ScenarioResponder.from_file(FIXTURES / "scenarios" / "approval.toml")
    ) as server:
        code, out, err = await run_cli(
            "call",
            "--input",
            str(FIXTURES / "hello.wav"),
            "--tools",
            str(tools),
            "--config",
            str(config),
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-x",
            "--idle-exit",
            "1",
            *flag,
        )
    assert code == 0, err
    tool_line = next(line for line in out.splitlines() if "tool: send_email" in line)
    assert expected in tool_line


HUNG_TOOL = '''
import threading

from voiceclient import tool


@tool
def slow_lookup(topic: str) -> dict:
    """Never returns."""
    threading.Event().wait()
    return {}
'''


async def test_a_hung_sync_tool_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """The tool's timeout answers the model; once the call hangs up, the process ends (the tool's thread was
    once joined at interpreter shutdown, forever)."""
    tools = tmp_path / "hung_tools.py"
    tools.write_text(HUNG_TOOL)
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "slow_tool.toml")
    async with RealtimeServer(port=0, responder=responder) as server:
        code, out, err = await run_cli(
            "call",
            "--input",
            str(FIXTURES / "two_turns_24k.wav"),
            "--tools",
            str(tools),
            "--tool-timeout",
            "1",
            "--idle-exit",
            "1",
            "--max-duration",
            "20",
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-x",
            timeout=40,
        )
    assert code == 0, err
    assert "slow_lookup timed out after 1 s" in out
    assert "hanging up: conversation idle" in out


async def test_sigterm_to_serve_ends_its_calls_and_tells_their_clients(tmp_path: Path) -> None:
    """Calls whose clients were killed, and one that is alive: `serve` ends within its close bound, with no
    traceback, and the live client hears why (not 2 s of missing audio, nor a cancel it never sent)."""
    serve, url = await start_serve("--no-speech")
    killed = []
    try:
        for _ in range(2):  # clients killed mid-call: their peers never answer the close
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "voiceclient", "call", "--base-url", url, "--api-key", "sk-x"),
                *("--input", str(FIXTURES / "long_tone_48k.wav")),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            killed.append(proc)
            assert proc.stdout is not None
            while b"connected" not in await asyncio.wait_for(proc.stdout.readline(), 20):
                pass
            proc.kill()
            await proc.wait()
        settings = ClientSettings(base_url=url, api_key="sk-x")
        source, log = WavSource(FIXTURES / "long_tone_48k.wav"), Recording(events_jsonl=tmp_path / "events.jsonl")
        async with VoiceCall(settings, source=source, recording=log) as call:
            await call.wait_for(lambda e: e.type == "input_audio_buffer.speech_started", timeout=10)
            serve.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionLostError, match="server_shutting_down"):
                await call.run_until_idle(30, 30)
        _, err = await asyncio.wait_for(serve.communicate(), 20)
    finally:
        for proc in [serve, *killed]:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert serve.returncode == 0, err.decode()
    text = err.decode()
    assert "Traceback" not in text and "never retrieved" not in text, text
    assert "shutting down: ending 3 call(s)" in text
    assert text.strip().splitlines()[-1] == "voiceclient: server stopped"
    received = [e["event"] for e in read_events(tmp_path / "events.jsonl") if e["dir"] == "server"]
    assert [e["error"]["code"] for e in received if e["type"] == "error"] == ["server_shutting_down"]
    for done in (e["response"] for e in received if e["type"] == "response.done"):
        assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "server_shutting_down"


async def test_a_reader_that_goes_away_does_not_break_the_call(tmp_path: Path) -> None:
    """`voiceclient call ... | head -1`: the call, its tool and its files go on; the exit is clean. (Every print
    after the reader left raised BrokenPipeError, which failed the tool and the command.)"""
    tools = tmp_path / "weather_tools.py"
    tools.write_text(TOOLS)
    events = tmp_path / "events.jsonl"
    session = tmp_path / "session.toml"
    session.write_text('[session.audio.input.turn_detection]\ntype = "server_vad"\nsilence_duration_ms = 800\n')
    read_end, write_end = os.pipe()
    async with RealtimeServer(
        port=0, responder=ScenarioResponder.from_file(FIXTURES / "scenarios" / "tools.toml")
    ) as server:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "voiceclient", "call", "--input", str(FIXTURES / "hello.wav")),
            *("--tools", str(tools), "--session", str(session), "--events", str(events), "--idle-exit", "1"),
            *("--base-url", server.base_url, "--api-key", "sk-test"),
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:  # as `head -1` does: one line, then it is gone
            first = await asyncio.wait_for(asyncio.to_thread(reader.readline), 20)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 45)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert b"connected" in first
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    sent = [e["event"] for e in read_events(events) if e["dir"] == "client"]
    outputs = [e["item"]["output"] for e in sent if e["type"] == "conversation.item.create"]
    assert outputs and "sunny" in outputs[0]  # the tool ran and answered, though its line could not be printed
