"""Standard output that may close under us: `voiceclient demo | head -4`.

Python ignores SIGPIPE, so a reader that went away turns every later print into a `BrokenPipeError`, raised in
whatever printed: a tool's transcript line, a summary. What a command writes to stdout is for a reader; when the
reader is gone, the call, its tools and its files go on, and the output goes nowhere (as the Python documentation
advises, standard output is pointed at the null device, so the interpreter's last flush does not fail either).
"""

from __future__ import annotations

import errno
import os
from typing import Any, TextIO


class ReaderGoneSafe:
    """A text stream proxy that drops what is written once its reader has closed the pipe."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._on_error(exc)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._on_error(exc)

    def _on_error(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
            raise exc
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no descriptor (a test's StringIO): dropping the writes is enough
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
