"""Assertions on a scripted call whose failure says what was expected, what was heard and where the files are."""

from __future__ import annotations

import re
from typing import Any

from voiceclient.testing.calls import ScriptedCallResult

_NUMBERS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped, numbers up to twenty as digits (speech-to-text writes either):
    "It's twenty-two, or 7." -> ["it's", "20", "2", "or", "7"]."""
    found = re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))
    return [_NUMBERS.get(w, w) for w in found]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1)) if n else True


def assert_heard(result: ScriptedCallResult, *phrases: str, source: str = "audio") -> None:
    """Each phrase was said by the assistant, word for word (case and punctuation aside). `source="audio"` hears
    the assistant's WAV with offline speech-to-text; `"transcript"` reads the server's transcript events."""
    said = result.heard if source == "audio" else result.assistant_transcript
    missing = [p for p in phrases if not _contains(words(said), words(p))]
    if missing:
        raise AssertionError(
            f"expected the assistant to say {', '.join(repr(p) for p in missing)}; "
            f"{'heard' if source == 'audio' else 'its transcript was'}: {said!r}; "
            f"turns: {result.turns} ({result.where()})"
        )


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def assert_heard_close_to(result: ScriptedCallResult, expected: str, max_wer: float = 0.2) -> None:
    """The assistant's audio says about `expected` (word error rate at most `max_wer`)."""
    heard = result.heard
    wer = word_error_rate(expected, heard)
    if wer > max_wer:
        raise AssertionError(
            f"expected the assistant to say {expected!r} (word error rate <= {max_wer:.0%}); "
            f"heard {heard!r}, {wer:.0%} wrong; turns: {result.turns} ({result.where()})"
        )


def assert_tool_called(result: ScriptedCallResult, name: str, **arguments: Any) -> None:
    """The model called `name`, with at least these arguments."""
    calls = result.tool_calls
    for call in calls:
        if call.name == name and all(call.arguments.get(k) == v for k, v in arguments.items()):
            return
    made = ", ".join(f"{c.name}({c.arguments})" for c in calls) or "none"
    wanted = f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
    raise AssertionError(f"expected a call of {wanted}; the calls made: {made} ({result.where()})")


def assert_events_in_order(result: ScriptedCallResult, *types: str) -> None:
    """These server event types arrived in this order (others may come between)."""
    seen = result.event_types
    position = 0
    for wanted in types:
        try:
            position = seen.index(wanted, position) + 1
        except ValueError:
            after = seen[:position][-3:] or "the start"
            raise AssertionError(
                f"expected the server events {list(types)} in order; {wanted!r} did not come "
                f"after {after}; all: {seen} ({result.where()})"
            ) from None
