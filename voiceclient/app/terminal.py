"""The terminal under `talk`'s live panel: nothing writes to it but the panel and the lines printed above it.

The panel redraws in place: it moves the cursor up by its own height and draws again. Anything else that writes
to the terminal moves the screen under it, the next redraw starts too low, and the top of the panel is left in
the scrollback. Two things did: the terminal's echo of a typed line (its text and the Enter: two lines each
time), and writes to the process's stderr that bypass Python (ALSA's and PortAudio's messages, and log records,
whose handler holds the real stderr). So while the panel is up:

- the terminal echoes nothing and hands over keys one by one (`TerminalInput`: no ECHO, no ICANON), and
  `LineEditor` keeps the line being typed, which the panel shows;
- file descriptor 2 is a pipe (`StderrLines`) whose lines are printed above the panel like any other.

    editor = LineEditor()
    editor.feed(b"hello\x7fo\r")   # -> ["hello"]: Backspace took the "o" back, Enter ended the line

Keys: Enter ends the line, Backspace deletes a character, Ctrl-U the line, Ctrl-W the last word; Ctrl-D on an
empty line is the end of input (`EOF`); arrows and other escape sequences are ignored; Ctrl-C is still the
terminal's interrupt. Both need a POSIX terminal; elsewhere `talk` reads whole lines as the terminal echoes them.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

EOF = "\x04"  # what `feed` returns for Ctrl-D on an empty line
ENTER = ("\r", "\n")
BACKSPACE = ("\x7f", "\x08")
ERASE_LINE = "\x15"  # Ctrl-U
ERASE_WORD = "\x17"  # Ctrl-W
ESC = "\x1b"


class LineEditor:
    """Keys in, finished lines out; `text` is the line so far."""

    def __init__(self) -> None:
        self.text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = ""  # an escape sequence being skipped: "\x1b", "\x1b[" + parameters, or "\x1bO"

    def feed(self, data: bytes) -> list[str]:
        """The lines `data` finished (EOF for Ctrl-D on an empty line), in order."""
        done: list[str] = []
        for ch in self._decoder.decode(data):
            if self._escape == ESC and ch not in "[O":
                self._escape = ""  # Escape, then a key: the key as it is
            if self._escape:
                self._skip(ch)
            elif ch == ESC:
                self._escape = ESC
            elif ch in ENTER:
                done.append(self.text)
                self.text = ""
            elif ch in BACKSPACE:
                self.text = self.text[:-1]
            elif ch == ERASE_LINE:
                self.text = ""
            elif ch == ERASE_WORD:
                self.text = self.text.rstrip()
                self.text = self.text[: self.text.rfind(" ") + 1]
            elif ch == EOF:
                if not self.text:
                    done.append(EOF)
            elif ch == "\t":
                self.text += " "
            elif ch.isprintable():
                self.text += ch
        if self._escape == ESC:  # Escape pressed alone (a sequence arrives in one read): nothing to skip
            self._escape = ""
        return done

    def _skip(self, ch: str) -> None:
        """One character of an escape sequence: CSI (ESC [ parameters final) or SS3 (ESC O x)."""
        if self._escape == ESC:
            self._escape += ch
        elif self._escape == ESC + "O" or "@" <= ch <= "~":
            self._escape = ""  # the final character
        else:
            self._escape += ch


class TerminalInput:
    """While open: the terminal on `fd` echoes nothing and hands over keys one by one; a thread reads them and
    calls `on_keys` with each chunk (from that thread). Closing puts the terminal back as it was."""

    def __init__(self, fd: int, on_keys: Callable[[bytes], object]) -> None:
        self.fd = fd
        self.on_keys = on_keys
        self._saved: list[Any] | None = None
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None

    @staticmethod
    def possible(stream: TextIO | None) -> bool:
        """`stream` is a terminal whose modes this process can set (POSIX)."""
        try:
            import termios

            fd = stream.fileno() if stream is not None else -1
            termios.tcgetattr(fd)
        except (ImportError, AttributeError, ValueError, OSError):
            return False
        return os.isatty(fd)

    def open(self) -> None:
        import termios

        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ECHO | termios.ICANON)  # lflags: no echo, keys as they come (ISIG stays: Ctrl-C)
        mode[3] |= termios.NOFLSH  # and Ctrl-C does not throw away the panel half drawn (the rest would not match)
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._read, daemon=True, name="voiceclient-keys")
        self._thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.fd, 1024)
            except OSError:
                data = b""
            if not data:  # the terminal went away: the end of input
                self.on_keys(EOF.encode())
                return
            self.on_keys(data)

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(2)
            self._thread = None
            for fd in (self._stop_r, self._stop_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._saved is not None:
            import termios

            with contextlib.suppress(OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def __enter__(self) -> TerminalInput:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StderrLines:
    """While open: what is written to file descriptor 2 (by C libraries too) goes, line by line, to `on_line`
    (called from a thread of its own) instead of the terminal. Closing puts fd 2 back and passes on what is left."""

    def __init__(self, on_line: Callable[[str], object]) -> None:
        self.on_line = on_line
        self._saved = -1
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)  # fd 2 is now the pipe's only writer: its end (at close) ends the reader
        self._thread = threading.Thread(target=self._read, args=(read_end,), daemon=True, name="voiceclient-stderr")
        self._thread.start()

    def _read(self, fd: int) -> None:
        with open(fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(4096):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._pass_on(line)
            if pending:
                self._pass_on(pending)

    def _pass_on(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip()
        if text:
            try:
                self.on_line(text)
            except Exception:  # (the loop it hands lines to has closed) nowhere left to show it
                pass

    def close(self) -> None:
        if self._saved < 0:
            return
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(self._saved, 2)  # the pipe's last writer closes: the reader reads what is left, and ends
        os.close(self._saved)
        self._saved = -1
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def __enter__(self) -> StderrLines:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
