#!/usr/bin/env python3
"""Regenerate every audio fixture deterministically: tones with numpy, speech with espeak-ng (Debian).

    .venv/bin/python scripts/make_fixtures.py           # writes fixtures/*.wav and voiceclient/assets/*.wav

Tones are bit-exact on every machine; spoken files are exact for a given espeak-ng version (1.51 here).
fixtures/README.md says what each file is for.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
ASSETS = ROOT / "voiceclient" / "assets"
sys.path.insert(0, str(ROOT))
from voiceclient.audio.format import tone  # noqa: E402
from voiceclient.audio.sources import load_audio  # noqa: E402


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    data = pcm if channels == 1 else np.repeat(pcm, channels)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())
    print(f"wrote {path.relative_to(ROOT)} ({pcm.size / rate:.2f} s, {rate} Hz, {channels} ch)")


def write_float_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """IEEE float32 WAV (format 3), which Python's wave module cannot write."""
    data = (pcm.astype(np.float32) / 32768.0).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    print(f"wrote {path.relative_to(ROOT)} ({pcm.size / rate:.2f} s, {rate} Hz, float32)")


def speak(text: str, rate: int = 24000) -> np.ndarray:
    """espeak-ng (en-us, 160 wpm) at its native 22.05 kHz, resampled to `rate`."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed for the spoken fixtures: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(out), text], check=True)
        return load_audio(out, rate)


WER_SET = [  # read by flite's slt voice: the speech-to-text accuracy set (about 60 words)
    "The quick brown fox jumps over the lazy dog.",
    "Please book a table for two people at seven tonight.",
    "What time does the next train to Boston leave?",
    "Turn off the lights in the kitchen and lock the front door.",
    "My favorite colors are green, blue and orange.",
    "Remind me to call my sister tomorrow morning.",
    "How many kilometers is it from here to the airport?",
]


def flite(text: str, rate: int = 24000) -> np.ndarray:
    if shutil.which("flite") is None:
        sys.exit("flite is needed for the speech-to-text set: apt-get install flite")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(out)], check=True)
        return load_audio(out, rate)


def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    ASSETS.mkdir(exist_ok=True)
    # Tones: known frequencies to assert on, in awkward formats to exercise the WAV source.
    write_wav(
        FIXTURES / "tone_440_16k_stereo.wav",
        np.concatenate([silence(0.5, 16000), tone(440, 1.0, 16000), silence(0.5, 16000)]),
        16000,
        2,
    )
    write_float_wav(
        FIXTURES / "tone_880_44k_float.wav",
        np.concatenate([silence(0.3, 44100), tone(880, 0.8, 44100), silence(0.3, 44100)]),
        44100,
    )
    write_wav(
        FIXTURES / "two_turns_24k.wav",
        np.concatenate(
            [
                silence(0.3, 24000),
                tone(440, 1.0, 24000),
                silence(3.0, 24000),
                tone(660, 1.0, 24000),
                silence(0.5, 24000),
            ]
        ),
        24000,
    )
    write_wav(
        FIXTURES / "long_tone_48k.wav",
        np.concatenate([silence(0.3, 48000), tone(523.25, 3.0, 48000), silence(0.3, 48000)]),
        48000,
    )
    # Speech.
    write_wav(FIXTURES / "hello.wav", speak("Hello, can you hear me?", 22050), 22050)
    # The speech-to-text accuracy set: one WAV per sentence, and the sentences in a text file beside them.
    (FIXTURES / "speech").mkdir(exist_ok=True)
    for i, sentence in enumerate(WER_SET, 1):
        write_wav(FIXTURES / "speech" / f"sentence_{i}.wav", flite(sentence, 16000), 16000)
    (FIXTURES / "speech" / "sentences.txt").write_text("\n".join(WER_SET) + "\n")
    # The demo's conversation (shipped in the package so `voiceclient demo` works from any install).
    question = speak("What is the weather like in Paris today?")
    thanks = speak("Thank you. Goodbye!")
    write_wav(
        ASSETS / "demo_user.wav",
        np.concatenate([silence(0.4, 24000), question, silence(7.0, 24000), thanks, silence(0.5, 24000)]),
        24000,
    )
    write_wav(ASSETS / "demo_check.wav", speak("Let me check the weather in Paris."), 24000)
    write_wav(ASSETS / "demo_answer.wav", speak("It is sunny and twenty two degrees in Paris."), 24000)
    write_wav(ASSETS / "demo_bye.wav", speak("You are welcome. Goodbye!"), 24000)


if __name__ == "__main__":
    main()
