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

import pytest

from tests.conftest import FIXTURES, loud_spans
from voiceclient.audio.sources import load_audio

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess, pytest.mark.webrtc]
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
    # Every call that was counted connected and was answered: one of each per call (one turn each).
    calls = int(rows["call"]["Request Count"])
    assert int(rows["connect"]["Request Count"]) >= calls
    assert int(rows["first answer audio"]["Request Count"]) == int(rows["turn latency"]["Request Count"]) == calls
    # The echo cannot start before the user has finished speaking: the first answer comes after the speech's end
    # (the user speaks from the moment the session is confirmed), and a turn's latency is counted from that end.
    speech_end_ms = loud_spans(load_audio(said, 48000), 48000)[-1][1] * 1000
    assert float(rows["first answer audio"]["Min Response Time"]) >= speech_end_ms - 40
    assert float(rows["turn latency"]["Min Response Time"]) > 0
    # A call's parts lie within it, and the create-call request within connecting.
    assert float(rows["create call"]["Max Response Time"]) <= float(rows["connect"]["Max Response Time"])
    assert float(rows["first answer audio"]["Max Response Time"]) < float(rows["call"]["Max Response Time"])


def test_headless_run_against_serve(host: str, tmp_path: Path) -> None:
    run = subprocess.run(
        locust("--headless", "-u", "2", "-r", "2", "-t", "10s", "--host", host, "--csv", str(tmp_path / "run")),
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
            "10s",
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
