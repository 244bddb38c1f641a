"""`voiceclient report`: a call's timeline as one page, from the files the call wrote. The report of a real call
(the demo: two spoken turns and a tool) read by real Chromium; the timeline of a log with every kind of lane;
bad input."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from voiceclient.report import Timeline

from .conftest import FIXTURES, read_events, read_wav
from .test_browser import CHROMIUM
from .test_cli import run_cli

pytestmark = pytest.mark.timeout(120)


def dom(page: Path) -> str:
    """The page as Chromium has it once its script has run."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    return done.stdout


def latencies_heard(recording: Path, stops: list[float]) -> list[float]:
    """Each turn's latency from the recording alone (20 ms frames, -40 dBFS): the user's last sound before the
    VAD's stop, to the answer's first sound after it."""
    pcm, rate, _ = read_wav(recording)
    n = rate // 50
    frames = pcm[: pcm.shape[0] // n * n].astype(float).reshape(-1, n, 2)
    db = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) / 32768 + 1e-12)
    out = []
    for stop in stops:
        upto = int(stop * 50)
        user = np.nonzero(db[:upto, 0] > -40)[0]
        end = (user[-1] + 1) / 50
        answer = np.nonzero(db[int(end * 50) :, 1] > -40)[0]
        out.append((answer[0] / 50) * 1000)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/test installs it)")
async def test_the_report_of_a_call_with_two_spoken_turns_and_a_tool(tmp_path: Path) -> None:
    code, _, err = await run_cli("demo", "--output-dir", str(tmp_path), "--quiet", "--transport", "webrtc", timeout=90)
    assert code == 0, err
    events, recording = tmp_path / "events.jsonl", tmp_path / "conversation.wav"
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    code, out, err = await run_cli(
        "report", str(events), "--recording", str(recording), "-o", str(page), "--png", str(png)
    )
    assert code == 0, err
    assert re.match(r".*report\.html: 1\d\.\d s, 2 turns, latency \d+ ms median, 1 tool calls, 0 errors", out)
    log = read_events(events)
    call_id = next(e["event"]["call_id"] for e in log if e["event"]["type"] == "conversation.history")
    said = [e["event"]["transcript"] for e in log if e["event"]["type"] == "response.output_audio_transcript.done"]
    stops = [e["t"] for e in log if e["event"]["type"] == "input_audio_buffer.speech_stopped"]

    text = page.read_text()
    # Nothing from outside: no external reference, and a policy that lets the browser load nothing.
    assert "default-src 'none'" in text and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text
    shown = dom(page)
    assert 'data-ready="1"' in shown  # the script ran to the end
    assert f'id="fact-call">{call_id}<' in shown and 'id="fact-tool-calls">get_weather<' in shown
    rows = re.findall(
        r"<tr><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td><td class=\"ms\">(\d+) ms</td>"
        r"<td>([^<]*)</td><td>([^<]*)</td></tr>",
        shown,
    )
    assert [int(r[0]) for r in rows] == [1, 2]
    assert " ".join(r[3] for r in rows).split() == " ".join(said).split()  # the assistant's words, turn by turn
    for (_, ms, _, _), expected in zip(rows, latencies_heard(recording, stops)):
        assert abs(int(ms) - expected) <= 30, (ms, expected)  # as the recording shows it
    # The picture: the page as drawn, not blank (the two channels, the lanes, the summary).
    with av.open(str(png)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape[:2] == (1000, 1600)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 200 and image.std() > 15
    user_blue = np.all(np.abs(image.astype(int) - [0x4F, 0xB3, 0xFF]) < 12, axis=2).sum()
    answer_orange = np.all(np.abs(image.astype(int) - [0xFF, 0xB4, 0x54]) < 12, axis=2).sum()
    assert user_blue > 2000 and answer_orange > 2000  # both waveforms are drawn


def line(t: float, direction: str, **event: Any) -> str:
    return json.dumps({"t": t, "dir": direction, "event": event})


def test_a_timeline_of_every_lane_from_a_log_cut_short(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(
        "\n".join(
            [
                line(0.1, "server", type="session.created", session={}),
                line(0.2, "client", type="session.update", session={}),
                line(0.5, "server", type="input_audio_buffer.speech_started"),
                line(1.5, "server", type="input_audio_buffer.speech_stopped"),
                line(1.6, "server", type="response.created", response={"id": "r1"}),
                line(
                    1.7,
                    "server",
                    type="response.function_call_arguments.done",
                    name="get_weather",
                    call_id="c1",
                    arguments='{"city":"Paris"}',
                ),
                line(
                    1.75,
                    "client",
                    type="conversation.item.create",
                    item={"type": "function_call_output", "call_id": "c1", "output": '{"forecast":"sunny"}'},
                ),
                line(
                    1.8,
                    "server",
                    type="response.done",
                    response={
                        "id": "r1",
                        "status": "completed",
                        "usage": {"total_tokens": 42, "input_tokens": 30, "output_tokens": 12},
                    },
                ),
                line(1.9, "server", type="output_audio_buffer.started", response_id="r2"),
                line(
                    2.0, "server", type="response.output_audio_transcript.done", response_id="r2", transcript="Sunny."
                ),
                line(2.4, "server", type="input_audio_buffer.speech_started"),
                line(2.45, "server", type="output_audio_buffer.cleared", response_id="r2"),
                line(
                    2.5,
                    "server",
                    type="error",
                    error={"type": "invalid_request_error", "code": "bad_thing", "message": "no"},
                ),
                line(3.0, "local", type="call.status", text="connection lost: the oai-events data channel closed"),
                line(3.6, "local", type="call.switched", reason="lost", **{"from": "rtc_a", "to": "rtc_b"}),
                "this line is not JSON",
                '{"t": 4.0, "dir": "server", "event": {"type": "response.cre',  # the call was killed mid-write
            ]
        )
        + "\n"
    )
    tl = Timeline.read(log)
    spans = {(s.lane, s.label, s.start, s.end) for s in tl.spans}
    assert ("user speaking", "speaking", 0.5, 1.5) in spans and ("user speaking", "speaking", 2.4, None) in spans
    assert ("responses", "completed · 42 tokens", 1.6, 1.8) in spans
    assert ("tools", 'get_weather({"city":"Paris"}) -> {"forecast":"sunny"} (50 ms)', 1.7, 1.75) in spans
    assert ("assistant audio", "cut off", 1.9, 2.45) in spans
    assert [(m.lane, m.label) for m in tl.marks if m.lane in ("errors", "connection")] == [
        ("connection", "session.created"),
        ("errors", "bad_thing"),
        ("connection", "connection lost: the oai-events data channel closed"),
        ("connection", "switched: lost"),
    ]
    assert [(s.who, s.t, s.text) for s in tl.said] == [("assistant", 1.9, "Sunny.")]  # where its audio started
    (turn,) = tl.turns  # the second stretch of speech never ended
    assert turn.measured == "events" and turn.latency_ms == pytest.approx(400) and turn.answer_text == "Sunny."
    s = tl.summary
    assert (s["turns"], s["tools"], s["errors"], s["switches"], s["events"]) == (1, ["get_weather"], 1, 1, 15)
    assert s["usage"] == {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}
    assert tl.to_json()["loudness"] is None


async def test_bad_input_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not a log\n")
    not_wav = tmp_path / "x.wav"
    not_wav.write_text("RIFF?")
    good = tmp_path / "events.jsonl"
    good.write_text(line(0.1, "server", type="session.created", session={}) + "\n")
    for args, message in (
        ([str(tmp_path / "none.jsonl")], "event log not found"),
        ([str(empty)], "no events (expected the JSONL event log of a call: --events)"),
        ([str(good), "--recording", str(not_wav)], "not a WAV recording"),
    ):
        code, _, err = await run_cli("report", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    code, out, _ = await run_cli("report", str(good))
    assert code == 0 and (tmp_path / "events.html").is_file() and "0 turns" in out


async def test_a_passing_tests_call_has_its_report_on_request(realtime_server: Any, scripted_call: Any) -> None:
    result = await scripted_call(realtime_server, FIXTURES / "tone_440_16k_stereo.wav")
    page = result.report()
    assert page == result.events_jsonl.with_name("1-tone_440_16k_stereo.report.html")
    tl = Timeline.read(result.events_jsonl, result.recording)
    (turn,) = tl.turns
    assert turn.measured == "recording" and turn.latency_ms is not None
    # The call's own meter agrees, within a frame (20 ms frames against the report's 10 ms): both place frames by
    # pts, anchored on the earliest-stamped frame, so a busy event loop stamping frames late moves neither (it
    # once made them differ by 226 ms, when the meter read arrival stamps and the recording the first frame's).
    assert abs(turn.latency_ms - result.latencies[0] * 1000) < 30
    assert f"{turn.latency_ms:.0f} ms" in page.read_text()
