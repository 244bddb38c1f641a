"""Load tests on Locust (`voiceclient.locust`): `python -m voiceclient.locust --headless` against a `voiceclient
serve` process, on its own and as a master with two workers; what Locust wrote in its CSV statistics is checked.

Locust monkey-patches the standard library when it is imported, so this process never imports it: every part runs
in a process of its own, as a user would run it.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, loud_spans
from voiceclient.audio.sources import load_audio

pytestmark = pytest.mark.timeout(60)
# What the callers say: the package's default (a sentence of the demo), or a WAV of the user's (a tone, 16 kHz
# stereo) through the environment.
DEFAULT = Path(__file__).resolve().parents[1] / "voiceclient" / "assets" / "demo_check.wav"
TONE = FIXTURES / "tone_440_16k_stereo.wav"
FIGURES = {"create call", "connect", "first answer audio", "turn latency", "audio gaps", "call"}


@pytest.fixture
def host() -> Iterator[str]:
    """A `voiceclient serve` process (the echo responder), as Locust's `--host`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield line.split("listening on ")[1].split()[0].removesuffix("/v1")
    finally:
        proc.terminate()
        proc.wait(10)


def locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "voiceclient.locust", *args]


ENV = {**os.environ, "OPENAI_API_KEY": "sk-load-test"}


def stats(prefix: Path) -> dict[str, dict[str, str]]:
    """Locust's `PREFIX_stats.csv`, by request name (the "realtime" rows)."""
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f) if row["Type"] == "realtime"}


def check(prefix: Path, said: Path) -> None:
    """Every figure was reported, none failed, and the figures make sense together."""
    rows = stats(prefix)
    assert FIGURES <= set(rows), rows.keys()
    for name in FIGURES:
        assert int(rows[name]["Request Count"]) > 0, rows[name]
        assert int(rows[name]["Failure Count"]) == 0, rows[name]
    with open(f"{prefix}_failures.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []
    # Every call that was counted connected and was answered: a first answer per call, a latency per turn.
    calls = int(rows["call"]["Request Count"])
    assert int(rows["connect"]["Request Count"]) >= calls
    assert int(rows["first answer audio"]["Request Count"]) == calls <= int(rows["turn latency"]["Request Count"])
    # The echo cannot start before the user has finished speaking: the first answer comes after the speech's end
    # (the user speaks from the moment the session is confirmed), and a turn's latency is counted from that end.
    speech_end_ms = loud_spans(load_audio(said, 48000), 48000)[-1][1] * 1000
    assert float(rows["first answer audio"]["Min Response Time"]) >= speech_end_ms - 40
    assert float(rows["turn latency"]["Min Response Time"]) > 0
    # A call's parts lie within it, and the create-call request within connecting.
    assert float(rows["create call"]["Max Response Time"]) <= float(rows["connect"]["Max Response Time"])
    assert float(rows["first answer audio"]["Max Response Time"]) < float(rows["call"]["Max Response Time"])


@pytest.mark.subprocess
@pytest.mark.webrtc
def test_headless_run_against_serve(host: str, tmp_path: Path) -> None:
    # 12 s: a call each (about 6 s), then a second that the end cuts: it is hung up and not counted
    run = subprocess.run(
        locust("--headless", "-u", "2", "-r", "2", "-t", "12s", "--host", host, "--csv", str(tmp_path / "run")),
        env={k: v for k, v in ENV.items() if k != "VOICECLIENT_LOCUST_WAV"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stderr[-3000:]  # (Locust exits 1 when any request failed)
    check(tmp_path / "run", DEFAULT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.subprocess
@pytest.mark.webrtc
def test_master_and_two_workers(host: str, tmp_path: Path) -> None:
    port = str(free_port())
    env = {**ENV, "VOICECLIENT_LOCUST_WAV": str(TONE)}
    master = subprocess.Popen(
        locust(
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            "30",
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "12s",
            "--host",
            host,
            "--csv",
            str(tmp_path / "run"),
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker_args = locust("--worker", "--master-host", "127.0.0.1", "--master-port", port)
    workers = [
        subprocess.Popen(worker_args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        out, _ = master.communicate(timeout=50)
        outs = [w.communicate(timeout=10)[0] for w in workers]
    finally:
        for proc in (master, *workers):
            proc.kill()
            proc.wait()
    assert master.returncode == 0, out[-3000:]
    assert all(w.returncode == 0 for w in workers), outs
    check(tmp_path / "run", TONE)


# The figures of a call, without Locust (`voiceclient.locust.calls` imports neither Locust nor gevent).
def frames(ear, start: float, count: int, loud: bool = True, every: float = 0.02) -> float:
    """`count` 20 ms frames arriving `every` seconds from `start`; when the next would arrive."""
    pcm = np.full(960, 8000 if loud else 0, np.int16)
    for i in range(count):
        ear(pcm, None, start + i * every)
    return start + count * every


def test_the_ear_counts_a_cut_in_the_middle_of_an_answer_and_not_the_pauses_between() -> None:
    from voiceclient.locust.calls import Ear

    ear = Ear(buffer=0.1)
    t = frames(ear, 100.0, 50)  # a second of answer, in time
    assert (ear.gaps, ear.first_sound_at) == (0, 100.0)
    t = frames(ear, t + 0.3, 50)  # the next frame 300 ms late: the player ran dry for 200 ms
    assert ear.gaps == 1 and ear.gap_seconds == pytest.approx(0.2)
    t = frames(ear, t, 10, loud=False)  # the answer ends in silence ...
    frames(ear, t + 2.0, 20)  # ... and the next begins 2 s later: a pause, not a cut
    assert ear.gaps == 1
    burst = Ear(buffer=0.1)
    frames(burst, 0.0, 50, every=0.0)  # a WebSocket's answer, a second's audio at once: no cut
    frames(burst, 0.9, 10)
    assert burst.gaps == 0


def test_the_ear_times_a_typed_turn_to_the_first_sound_of_its_answer() -> None:
    from voiceclient.locust.calls import Ear

    ear = Ear()
    t = frames(ear, 10.0, 5, loud=False)
    ear.expect(t)
    frames(ear, t + 0.25, 5)
    assert ear.text_latencies == [pytest.approx(0.25)] and ear.first_sound_at == pytest.approx(t + 0.25)


def test_the_host_is_the_base_url_and_a_plan_says_one_thing() -> None:
    from voiceclient.errors import CallError
    from voiceclient.locust.calls import CallPlan, base_url

    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert base_url("https://relay.example.com/openai/v1/") == "https://relay.example.com/openai/v1"
    with pytest.raises(CallError, match="a WAV or a text"):
        CallPlan()
    with pytest.raises(CallError, match="a WAV or a text"):
        CallPlan(wav=TONE, text="hi")
    assert "gevent" not in sys.modules  # nothing here imported Locust (it patches the standard library)
