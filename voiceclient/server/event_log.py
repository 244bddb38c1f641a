"""One session's event log as the console keeps it: each line as its JSON text, the whole bounded in bytes.

    a string over LONG_STRING characters   its start kept, then "… (N more characters not kept)"
    a line still over LONG_LINE bytes      the event's type kept, and what it was ("not_kept")
    the log over PER_SESSION bytes         its earliest lines dropped (`not_kept` counts them); the newest stays

Measured (issue 29): `voiceclient demo` keeps 79 events, 27 kB, over WebRTC and 882 events, 120 kB, over the
WebSocket (its audio deltas are in, their audio is not); a WebSocket client that sends 2,000 items of 10 kB text
made one session keep 62 MB. PER_SESSION is 2 MiB, about fifteen times the demo's WebSocket call; the console's
budget across sessions is in `console.py`.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from typing import Any

LONG_STRING = 16 * 1024  # characters of one string in an event (instructions, a text item, a tool's output)
LONG_LINE = 256 * 1024  # bytes of one line, after its long strings are cut
PER_SESSION = 2 * 1024 * 1024  # bytes of one session's log
LINE_OVERHEAD = 64  # what Python spends on a kept line besides its text (the str object, the deque's slot)


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # ASCII: its length is its bytes


def shorten(value: Any) -> Any:
    """`value` with every string over LONG_STRING cut (a copy where something is cut; the event is not changed)."""
    if isinstance(value, str) and len(value) > LONG_STRING:
        return value[:LONG_STRING] + f"… ({len(value) - LONG_STRING} more characters not kept)"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    return value


def fit(line: dict[str, Any]) -> str:
    """The line's JSON text, within LONG_LINE bytes."""
    text = to_json(line)
    if len(text) <= LONG_STRING:  # (no string in it can be longer: the common case costs one dumps)
        return text
    text = to_json(shorten(line))
    if len(text) <= LONG_LINE:
        return text
    event = line.get("event") or {}
    stub = {"type": event.get("type"), "not_kept": f"this event was {len(text)} bytes; the console keeps {LONG_LINE}"}
    return to_json({**line, "event": stub})


class EventLog:
    """The lines of one session, oldest first, within PER_SESSION bytes (`size`); `not_kept` counts the earliest
    lines dropped to stay within it."""

    def __init__(self, limit: int = PER_SESSION) -> None:
        self.limit = limit
        self.lines: collections.deque[str] = collections.deque()
        self.size = 0
        self.not_kept = 0

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def append(self, line: dict[str, Any]) -> str:
        """Keep `line` (cut to fit); returns its JSON text, as kept."""
        text = fit(line)
        self.lines.append(text)
        self.size += len(text) + LINE_OVERHEAD
        while self.size > self.limit and len(self.lines) > 1:
            dropped = self.lines.popleft()
            self.size -= len(dropped) + LINE_OVERHEAD
            self.not_kept += 1
        return text

    def parsed(self) -> list[dict[str, Any]]:
        """The kept lines as dicts (for the timeline page)."""
        return [json.loads(text) for text in self.lines]
