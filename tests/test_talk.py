"""`voiceclient talk` through real (virtual) devices: PulseAudio's null sink is the speaker, a remapped monitor the
microphone; paplay speaks into it and parecord listens to the speaker."""

from __future__ import annotations

import asyncio
import io
import itertools
import subprocess
import threading
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig
from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.client.options import Recording
from voiceclient.client.settings import TransportName
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, SPEAKER_MARGIN, loud_spans, read_events

pytestmark = pytest.mark.timeout(90)


def wav(path: Path, pcm: np.ndarray, rate: int = API_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def spans_at(pcm: np.ndarray, rate: int, frequency: float) -> list[tuple[float, float]]:
    """Loud spans whose main frequency is `frequency` (within 3 %)."""
    out = []
    for a, b in loud_spans(pcm, rate):
        seg = pcm[int(a * rate) : int(b * rate)]
        if seg.size > rate // 20 and abs(dominant_frequency(seg, rate) - frequency) < frequency * 0.03:
            out.append((a, b))
    return out


def cuts(talk: Any) -> dict[str, int]:
    """The cuts `talk` counted in its own audio: the speaker running out mid-sound or its device's callback late,
    the microphone's device late. Each is a real hole on a busy machine (this process or the device's thread held
    up), and the only reason a turn may reach the speaker in pieces."""
    return {
        "speaker ran out": talk.speaker.gaps,
        "speaker's device late": talk.speaker.device_stalls,
        "microphone's device late": talk.mic.gaps,
    }


def one_turn(
    pcm: np.ndarray, frequency: float, counted: dict[str, int], length: tuple[float, float] = (0.6, 1.0)
) -> tuple[float, float]:
    """The span of the one turn heard at `frequency`: a single span, or, as many more pieces as the client counted
    cuts, with holes under 100 ms between them. Anything else (nothing, two turns, a long hole) fails."""
    pieces = spans_at(pcm, API_RATE, frequency)
    said = f"{frequency:.0f} Hz spans {pieces}, loud spans {loud_spans(pcm, API_RATE)}, cuts counted {counted}"
    assert pieces and len(pieces) - 1 <= sum(counted.values()), said
    assert all(b[0] - a[1] < 0.1 for a, b in itertools.pairwise(pieces)), said
    start, end = pieces[0][0], pieces[-1][1]
    assert length[0] < end - start < length[1], said  # the whole turn
    return start, end


async def converse(
    pulse,
    tmp_path: Path,
    server: RealtimeServer,
    say: list[tuple[float, Path]],
    seconds: float,
    commands: Sequence[tuple[float, str]] = (),
    transport: TransportName = "auto",
    agent: Any = None,
    session: SessionConfig | None = None,
    tools: list[Any] | None = None,
) -> tuple[np.ndarray, Any, Path]:
    """Run `talk` against `server`; play each WAV into the microphone at its time; record the speaker."""
    from voiceclient.app.talk import Talk

    events = tmp_path / "events.jsonl"
    queue: asyncio.Queue[str] = asyncio.Queue()
    talk = Talk(
        ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport),
        session or SessionConfig(),
        aec="off",
        recording=Recording(events_jsonl=events),
        commands=queue,
        stream=open(tmp_path / "screen.txt", "w"),
        agent=agent,
        tools=tools,
    )
    task = asyncio.ensure_future(talk.run(max_duration=seconds + 6))
    while talk.call is None or talk.call.state.value != "connected":
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # PulseAudio streams stall for a moment after they start
    out = tmp_path / "speaker.wav"
    recorder = subprocess.Popen(
        [
            "parecord",
            "--device=vspk.monitor",
            "--channels=1",
            "--rate=24000",
            "--format=s16le",
            "--file-format=wav",
            str(out),
        ],
        env=pulse,
    )
    start = asyncio.get_running_loop().time()
    players = []
    plan = sorted([(t, "play", p) for t, p in say] + [(t, "cmd", c) for t, c in commands], key=lambda x: x[0])
    for at, kind, what in plan:
        await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
        if kind == "play":
            players.append(subprocess.Popen(["paplay", "--device=vmicsink", str(what)], env=pulse))
        else:
            queue.put_nowait(str(what))
    await asyncio.sleep(max(0.0, start + seconds - asyncio.get_running_loop().time()))
    recorder.terminate()
    await asyncio.to_thread(recorder.wait, 10)
    for p in players:
        await asyncio.to_thread(p.wait, 10)
    queue.put_nowait("/q")
    await asyncio.wait_for(task, 15)
    with wave.open(str(out)) as w:
        heard = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return heard, talk, events


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_spoken_turn_reaches_the_server_and_the_echo_comes_out_of_the_speaker(
    pulse, tmp_path: Path, transport: str
) -> None:
    said = wav(tmp_path / "a.wav", np.concatenate([tone(440, 1.0, API_RATE), np.zeros(API_RATE // 2, np.int16)]))
    async with RealtimeServer(port=0) as server:
        heard, talk, _events = await converse(pulse, tmp_path, server, [(0.5, said)], seconds=5.0, transport=transport)  # type: ignore[arg-type]
        call = server.history[-1]
        user = call.conversation.user_audio()
    assert len(user) == 1
    a, b = loud_spans(user[0], API_RATE)[0]
    assert abs(dominant_frequency(user[0][int(a * API_RATE) + 1200 : int(b * API_RATE) - 1200], API_RATE) - 440) < 3
    start, _ = one_turn(heard, 440, cuts(talk), length=(0.85, 1.2))
    assert start > 1.5  # after the user's turn ended (0.5 s + 1 s of tone + the VAD's silence)
    assert talk.mic.blocks > 200 and talk.mic.dropped == 0


async def test_the_spoken_fixture_reaches_the_server_intact(pulse, tmp_path: Path) -> None:
    from voiceclient.audio.sources import load_audio

    async with RealtimeServer(port=0) as server:
        await converse(pulse, tmp_path, server, [(0.5, FIXTURES / "hello.wav")], seconds=5.0)
        call = server.history[-1]
        heard = np.concatenate(call.conversation.user_audio())
    said = load_audio(FIXTURES / "hello.wav", API_RATE)

    def envelope(pcm: np.ndarray) -> np.ndarray:  # 10 ms RMS frames
        n = API_RATE // 100
        return np.sqrt(np.mean(pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n) ** 2, axis=1))

    got, ref = envelope(heard), envelope(said)
    best = 0.0
    for lag in range(0, max(1, got.size - 40)):
        n = min(got.size - lag, ref.size)
        if n > 40:
            best = max(best, float(np.corrcoef(got[lag : lag + n], ref[:n])[0, 1]))
    assert best > 0.8, best  # the words arrived with their shape (through the device and Opus)
    assert 1.0 < heard.size / API_RATE < 4.0


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_barge_in_silences_the_speaker(pulse, tmp_path: Path, transport: str) -> None:
    first = wav(tmp_path / "a.wav", np.concatenate([tone(440, 0.6, API_RATE), np.zeros(API_RATE // 2, np.int16)]))
    second = wav(tmp_path / "b.wav", np.concatenate([tone(660, 0.6, API_RATE), np.zeros(API_RATE // 2, np.int16)]))
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")  # 3 s at 330 Hz
    async with RealtimeServer(port=0, responder=responder) as server:
        heard, talk, events = await converse(
            pulse,
            tmp_path,
            server,
            [(0.3, first), (2.4, second)],
            seconds=8.0,
            transport=transport,  # type: ignore[arg-type]
        )
    replies: list[tuple[float, float]] = []  # the reply, its pieces joined (a speaker that ran out splits it)
    for a, b in spans_at(heard, API_RATE, 330):
        if replies and a - replies[-1][1] < 0.1:
            replies[-1] = (replies[-1][0], b)
        else:
            replies.append((a, b))
    assert replies, "the reply was never heard"
    assert replies[0][1] - replies[0][0] < 1.8  # cut well before its 3 s
    assert talk.interrupts >= 1
    log = read_events(events)
    kinds = {d: [e["event"]["type"] for e in log if e["dir"] == d] for d in ("server", "client", "local")}
    assert "conversation.item.truncated" in kinds["server"]
    if transport == "webrtc":  # the server played the answer: it clears its buffer and truncates
        assert "output_audio_buffer.cleared" in kinds["server"]
    else:  # the client played it: its playout is cleared, and it tells the server what was heard
        assert "output_audio_buffer.cleared" in kinds["local"]
        [truncate] = [
            e["event"] for e in log if e["dir"] == "client" and e["event"]["type"] == "conversation.item.truncate"
        ]
        # where the item is cut is what came out of the (virtual) speaker, as parecord heard it (measured: 1000 ms
        # cut for 0.98 s heard, 1040 for 1.02)
        assert abs(truncate["audio_end_ms"] / 1000 - (replies[0][1] - replies[0][0])) < 0.15


async def test_local_interrupt_command(pulse, tmp_path: Path) -> None:
    first = wav(tmp_path / "a.wav", np.concatenate([tone(440, 0.6, API_RATE), np.zeros(API_RATE // 2, np.int16)]))
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")
    async with RealtimeServer(port=0, responder=responder) as server:
        heard, _talk, events = await converse(
            pulse, tmp_path, server, [(0.3, first)], seconds=7.0, commands=[(2.6, "/i")]
        )
    replies = spans_at(heard, API_RATE, 330)
    assert replies and replies[0][1] - replies[0][0] < 2.0
    log = read_events(events)
    sent = [e["event"]["type"] for e in log if e["dir"] == "client"]
    assert "output_audio_buffer.clear" in sent
    assert "output_audio_buffer.cleared" in [e["event"]["type"] for e in log if e["dir"] == "server"]


async def test_push_to_talk(pulse, tmp_path: Path) -> None:
    from voiceclient.app.talk import Talk

    said = wav(tmp_path / "a.wav", tone(550, 0.8, API_RATE))
    async with RealtimeServer(port=0) as server:
        queue: asyncio.Queue[str] = asyncio.Queue()
        talk = Talk(
            ClientSettings(base_url=server.base_url, api_key="sk-test"),
            SessionConfig(),
            aec="off",
            push_to_talk=True,
            commands=queue,
            recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
            stream=open(tmp_path / "screen.txt", "w"),
        )
        task = asyncio.ensure_future(talk.run(max_duration=20))
        while talk.call is None or talk.call.state.value != "connected":
            await asyncio.sleep(0.05)
        assert talk.call.effective_session["audio"]["input"]["turn_detection"] is None
        await asyncio.sleep(1.5)
        player = subprocess.Popen(["paplay", "--device=vmicsink", str(said)], env=pulse)  # not talking: muted
        await asyncio.to_thread(player.wait, 10)  # (a blocking wait would stall the loop and the microphone)
        queue.put_nowait("/t")
        await asyncio.sleep(0.3)
        player = subprocess.Popen(["paplay", "--device=vmicsink", str(said)], env=pulse)
        await asyncio.to_thread(player.wait, 10)
        await asyncio.sleep(0.3)
        queue.put_nowait("/t")
        stream = talk.call.events()
        done = await stream.next_of("response.done", timeout=10)
        queue.put_nowait("/q")
        await asyncio.wait_for(task, 15)
    sent = [e["event"]["type"] for e in read_events(tmp_path / "events.jsonl") if e["dir"] == "client"]
    assert sent[sent.index("input_audio_buffer.clear") :][:3] == [
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
        "response.create",
    ]
    assert done.response.status == "completed"
    call = server.history[-1]
    user = call.conversation.user_audio()
    assert len(user) == 1  # the tone played while muted never became a turn
    spans = loud_spans(user[0], API_RATE)
    assert len(spans) == 1 and abs(spans[0][1] - spans[0][0] - 0.8) < 0.15


async def test_talk_to_an_agents_sdk_agent(pulse, tmp_path: Path) -> None:
    """`talk --agent`: an Agents SDK triage agent hands off to the weather agent, whose tool the SDK runs; the
    answers come out of the speaker and the screen says what the SDK did."""
    from voiceclient.agents.app import load_agent

    said = wav(tmp_path / "q.wav", np.concatenate([tone(300, 1.0, API_RATE), np.zeros(API_RATE // 2, np.int16)]))
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "agents.toml")
    async with RealtimeServer(port=0, responder=responder) as server:
        heard, talk, events = await converse(
            pulse,
            tmp_path,
            server,
            [(0.5, said), (6.0, said)],
            seconds=11.0,
            agent=load_agent(f"{FIXTURES}/agents/weather.py:triage"),
        )
        session = server.history[-1].session
    screen = (tmp_path / "screen.txt").read_text()
    assert "agent 'triage' through the Agents SDK" in screen
    assert "agent: handoff triage -> weather" in screen
    assert 'agent: weather calls get_weather({"city": "Paris"})' in screen
    assert "agent: get_weather -> {'city': 'Paris', 'forecast': 'sunny'}" in screen
    assert "assistant: It is sunny in Paris." in screen
    assert talk.agent_session.current_agent == "weather" and talk.call.tool_calls == 0
    assert [t["name"] for t in session["tools"]] == ["get_weather"]
    # The four answers (440 Hz, 0.66 + 1.5 + 1.2 + 1.26 s) came out of the speaker, none cut by a barge-in.
    answered = sum(b - a for a, b in spans_at(heard, API_RATE, 440))
    assert 4.2 < answered < 5.1, spans_at(heard, API_RATE, 440)
    log = read_events(events)
    assert not [e for e in log if e["dir"] == "server" and e["event"]["type"] == "output_audio_buffer.cleared"]


async def test_the_panel_is_drawn_only_by_the_thread_that_prints_above_it(pulse, tmp_path: Path) -> None:
    """rich's refresh thread drawing the panel while a line printed above it from the event loop could leave the
    top of the panel in the scrollback (a panel that changed height is drawn from the wrong row): the panel is
    drawn from the event loop alone, as the lines are."""
    from rich.console import Console

    from voiceclient.app.talk import Talk
    from voiceclient.app.talk_view import TalkView

    writers: set[int] = set()

    class Screen(io.StringIO):
        def write(self, text: str) -> int:
            writers.add(threading.get_ident())
            return super().write(text)

    talk = Talk(
        ClientSettings(api_key="sk-test"), SessionConfig(), aec="off", stream=open(tmp_path / "screen.txt", "w")
    )
    screen = Screen()
    view = TalkView(talk, console=Console(file=screen, force_terminal=True, width=100))
    with view:
        for n in range(5):
            view.tokens = n
            view.refresh()
            await asyncio.sleep(0.1)
    assert "tokens 4" in screen.getvalue()
    assert writers == {threading.get_ident()}


async def test_unknown_commands_are_not_sent_and_the_help_lists_this_sessions(pulse, tmp_path: Path) -> None:
    """`/x`, `/foo bar` and `/t` (without --push-to-talk) each say so in one line and send nothing; `//text`
    sends `/text`; the help has no `/t` here."""
    from voiceclient.app.talk import Talk

    async with RealtimeServer(port=0) as server:
        queue: asyncio.Queue[str] = asyncio.Queue()
        talk = Talk(
            ClientSettings(base_url=server.base_url, api_key="sk-test"),
            SessionConfig(),
            aec="off",
            commands=queue,
            recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
            stream=open(tmp_path / "screen.txt", "w"),
        )
        task = asyncio.ensure_future(talk.run(max_duration=20))
        while talk.call is None or talk.call.state.value != "connected":
            await asyncio.sleep(0.05)
        stream = talk.call.events()
        for line in ["/x", "/foo bar", "/t", "/h", "//etc/hosts is a file"]:
            queue.put_nowait(line)
        done = await stream.next_of("response.done", timeout=10)
        queue.put_nowait("/q")
        await asyncio.wait_for(task, 15)
        items = server.history[-1].conversation.items
    said = [p["text"] for i in items if i.get("role") == "user" for p in i["content"] if p["type"] == "input_text"]
    assert said == ["/etc/hosts is a file"] and done.response.status == "completed"
    sent = [e["event"]["type"] for e in read_events(tmp_path / "events.jsonl") if e["dir"] == "client"]
    assert "input_audio_buffer.clear" not in sent and "input_audio_buffer.commit" not in sent  # /t did nothing
    lines = (tmp_path / "screen.txt").read_text().splitlines()
    for unknown in ("/x is not a command", "/foo is not a command", "/t is push-to-talk"):
        [line] = [line for line in lines if unknown in line]
        assert "(nothing was sent" in line or "--push-to-talk" in line
        assert line.endswith("/h this list | /q hang up and quit")
    helps = [line for line in lines if "] commands: " in line]
    assert len(helps) == 2 and all("/t " not in h and "/m mute" in h for h in helps)  # at the start, and /h
    assert "you (typed): /etc/hosts is a file" in "\n".join(lines)


async def test_the_microphone_counts_gaps_and_drops_only_once_it_runs(pulse) -> None:
    """A sound server's microphone takes up to 2 s to deliver its first block (the call sends silence meanwhile),
    and nobody reads it before the call connects: neither is a gap or a drop. The source suspended for a second
    mid-stream is one gap, of about 1 s."""
    from voiceclient.audio.mic import MicSource

    loop = asyncio.get_running_loop()
    starting = MicSource()
    starting.start()
    try:
        while starting.blocks < 25:  # read from the start, as a call that connects at once
            await starting.next_block()
    finally:
        starting.close()
    assert (starting.gaps, starting.gap_seconds, starting.dropped) == (0, 0.0, 0)
    mic = MicSource()
    mic.start()
    try:
        while mic.last_callback < mic.opened_at:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # delivering, and not read yet (a call still connecting): its queue overflows
        for _ in range(25):
            await mic.next_block()
        assert (mic.gaps, mic.dropped) == (0, 0)
        await asyncio.to_thread(subprocess.run, ["pactl", "suspend-source", "vmic", "1"], env=pulse, check=True)
        suspended = loop.time()
        while loop.time() - suspended < 1.0:
            await mic.next_block()
        await asyncio.to_thread(subprocess.run, ["pactl", "suspend-source", "vmic", "0"], env=pulse, check=True)
        while mic.gap_seconds == 0:
            await mic.next_block()
    finally:
        mic.close()
    assert mic.gaps == 1 and 0.9 < mic.gap_seconds < 2.0, mic.gap_seconds


async def test_the_speaker_counts_a_cut_in_the_sound_not_the_end_of_an_answer(pulse) -> None:
    """Frames as they arrive, 20 ms apart: a tone held up 100 ms in the middle is one gap; silence frames between
    answers, an answer that ends and nothing after it, and a flush (barge-in) are none."""
    from voiceclient.audio.format import RTP_RATE
    from voiceclient.audio.speaker import SpeakerSink

    speaker = SpeakerSink()
    speaker.start()
    loop = asyncio.get_running_loop()
    stalls = 0  # how often this loop fell behind by more than the prebuffer (a busy machine): a real cut each

    async def frames(pcm: np.ndarray) -> None:
        nonlocal stalls
        start, behind = loop.time(), False
        for n, i in enumerate(range(0, pcm.size, 960)):
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))
            late = loop.time() - (start + n * 0.02) > SPEAKER_MARGIN
            stalls += late and not behind
            behind = late
            speaker(pcm[i : i + 960])

    def busy() -> int:  # cuts the machine made: this loop late, or the device's own thread
        return stalls + speaker.device_stalls

    try:
        await asyncio.sleep(2.0)  # warm up: the output callback stalls for a while after start
        speaker.device_stalls = 0
        await frames(tone(440, 0.5, RTP_RATE))
        await asyncio.sleep(0.1)  # held up mid-answer: the speaker runs out
        await frames(tone(440, 0.5, RTP_RATE))
        assert 1 <= speaker.gaps <= 1 + busy(), (speaker.gaps, busy())
        assert speaker.prebuffer_ms == 60  # a gap: the prebuffer grows, so the next hold-up is not cut
        await frames(np.zeros(RTP_RATE // 2, np.int16))  # the silence between answers
        await frames(tone(550, 0.3, RTP_RATE))
        await frames(np.zeros(RTP_RATE // 2, np.int16))
        await frames(tone(550, 0.3, RTP_RATE))  # an answer that ends, nothing after it
        await asyncio.sleep(1.0)
        await frames(tone(660, 0.3, RTP_RATE))
        speaker.flush()  # a barge-in
        await asyncio.sleep(0.1)
        await frames(tone(660, 0.3, RTP_RATE))
        await asyncio.sleep(0.2)
    finally:
        speaker.close()
    assert 1 <= speaker.gaps <= 1 + busy() and speaker.trimmed == 0, (speaker.gaps, busy())
