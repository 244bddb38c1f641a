"""`talk`'s `/s`: the figures of the sound and the conversation, each said with what it means.

    status:
      microphone 'default': level -32 dBFS (the last 20 ms; speech is about -40 to -10 dBFS)
        gaps 0: times it went quiet for over 0.1 s after it had started (what you said then was lost)
        dropped 0: 20 ms blocks of it thrown away because the call did not take them in time (...)
      speaker 'default': 40 ms waiting to be played (about 40 keeps the sound smooth; at most 120)
        gaps 1: times it ran out in the middle of sound because the answer's audio came late (...)
        ...

The counters are the audio layer's (`MicSource`, `SpeakerSink`, `StreamGuard`); what they count is said there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    """The figures `/s` explains, read from the streams and the call at one moment."""

    mic_name: str
    mic_dbfs: float
    mic_muted: bool
    mic_gaps: int
    mic_gap_seconds: float
    mic_dropped: int
    speaker_name: str
    speaker_buffered_ms: float
    speaker_gaps: int
    speaker_trimmed_ms: float
    echo_cancellation: bool
    recoveries: int
    last_turn_ms: float | None


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def explain(h: Health) -> str:
    """The status as lines a person can read: every figure with what it means."""
    level = "silent" if math.isinf(h.mic_dbfs) else f"level {h.mic_dbfs:.0f} dBFS"
    lost = f", {h.mic_gap_seconds:.1f} s in all" if h.mic_gaps else ""
    turn = (
        f"{h.last_turn_ms:.0f} ms from the end of your speech to the first sound of the answer"
        if h.last_turn_ms is not None
        else "none spoken yet (the time from the end of your speech to the first sound of the answer)"
    )
    return "\n".join(
        [
            "status:",
            f"  microphone {h.mic_name!r}: {level} (the last 20 ms; speech is about -40 to -10 dBFS)"
            + (", muted: silence is sent" if h.mic_muted else ""),
            f"    gaps {h.mic_gaps}: times it went quiet for over 0.1 s after it had started "
            f"(what you said then was lost{lost})",
            f"    dropped {h.mic_dropped}: 20 ms blocks of it thrown away because the call did not take them in time "
            "(it was busy, or reconnecting)",
            f"  speaker {h.speaker_name!r}: {h.speaker_buffered_ms:.0f} ms waiting to be played "
            "(about 40 keeps the sound smooth; at most 120)",
            f"    gaps {h.speaker_gaps}: times it ran out in the middle of sound because the answer's audio came "
            "late (cuts you may have heard)",
            f"    skipped {h.speaker_trimmed_ms:.0f} ms: answer audio that piled up after a hold-up, dropped to keep "
            "the delay short (a jump you may have heard)",
            f"  echo cancellation {'on' if h.echo_cancellation else 'off'}; "
            + (
                f"the sound devices stopped and were reopened {times(h.recoveries)} (each said so above)"
                if h.recoveries
                else "the sound devices never stopped"
            ),
            f"  last spoken turn: {turn}",
        ]
    )
