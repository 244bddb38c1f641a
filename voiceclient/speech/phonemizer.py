"""IPA phonemes from espeak-ng, run as a command (its GPL code stays out of this process), for the Piper voice."""

from __future__ import annotations

import functools
import re
import subprocess
import threading


class Phonemizer:
    """`espeak-ng --ipa` as a command (its GPL code stays out of this process), one process per text. The next
    process is started ahead of need: starting espeak-ng (exec, loading its voice) is most of its time here, and
    it is then off the reply's path."""

    def __init__(self, voice: str = "en-us") -> None:
        self.voice = voice
        self._spare: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["espeak-ng", "-q", "--ipa", "-v", self.voice, "--stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    @staticmethod
    def once(voice: str, text: str) -> str:
        """One text, no process kept ready (for a caller without a `Phonemizer` of its own)."""
        return subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", voice, "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    def run(self, text: str) -> str:
        with self._lock:
            proc = self._spare if self._spare is not None and self._spare.poll() is None else self._start()
            self._spare = self._start()
        try:
            out, _ = proc.communicate(text, timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, "espeak-ng")
        return out

    def close(self) -> None:
        with self._lock:
            if self._spare is not None:
                self._spare.kill()
                self._spare.communicate()
                self._spare = None


def phonemize(text: str, voice: str = "en-us", phonemizer: Phonemizer | None = None) -> list[tuple[str, str]]:
    """(IPA phonemes, trailing punctuation) per clause, from the espeak-ng command."""
    clauses = [c.strip() for c in re.findall(r"[^,.!?;:]+[,.!?;:]*", text) if c.strip()]
    if not clauses:
        return []
    run = phonemizer.run if phonemizer is not None else functools.partial(Phonemizer.once, voice)
    marked = "\n".join(re.sub(r"[,.!?;:]+$", "", c) for c in clauses)
    lines = [line.strip().replace("\u200d", "") for line in run(marked).splitlines() if line.strip()]
    if len(lines) != len(clauses):  # espeak split or merged lines: fall back to one clause at a time
        lines = [run(re.sub(r"[,.!?;:]+$", "", c)).strip().replace("\n", " ").replace("\u200d", "") for c in clauses]
    return [(ph, (re.search(r"[,.!?;:]+$", c) or [""])[0][:1]) for ph, c in zip(lines, clauses)]
