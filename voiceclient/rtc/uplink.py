"""When the audio we send should carry in-band FEC: a policy fed the far end's RTCP receiver reports.

A clean path gets Opus's low-delay mode (2.5 ms look-ahead, no FEC: CELT packets cannot carry it); a lossy one
gets the VoIP mode with in-band FEC (6.5 ms look-ahead, each packet carrying a low-bitrate copy of the one before,
so the far end rebuilds a lost packet instead of concealing it). The far end tells us about loss in the report
blocks of its RTCP receiver/sender reports for our SSRC (RFC 3550 6.4.1): `fraction_lost` (loss since its previous
report, in 1/256) and the cumulative `packets_lost`. aiortc sends them every 0.5-1.5 s, libwebrtc about every 5 s.

Hysteresis: any report with loss (a fraction of 1 % or more, or the cumulative count rising) makes the uplink
protected at once; only `clear_after` seconds without a lossy report make it clean again. So one burst costs one
switch each way, and a path that keeps losing packets stays protected rather than flapping.

While protected, libopus is told to expect twice the loss of the last `window` seconds (5-25 %): each report's
fraction weighted by the time it covers, so the figure is the same whichever the far end's report cadence. (It was
twice the worst report: a burst of 10 packets is 20 % of a 1 s report and 4 % of a 5 s one, so an aiortc receiver
was sent a stream coded for 25 % loss and libwebrtc one for 8 %, and the first played worse: more of each packet
went to a copy of the one before, which a burst of 10 losses does not use.) Pure: fed times, no clock, no peer.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Literal

log = logging.getLogger(__name__)
Mode = Literal["clean", "protected"]
CLEAN: Mode = "clean"
PROTECTED: Mode = "protected"
MIN_LOSS = 0.01  # a report's fraction at or above this is loss (1/256 = 0.4 % is a single packet in ~5 s)
WINDOW = 5.0  # seconds of reports whose loss sets the expected loss
FIRST_SPAN = 1.0  # the time a stream's first report is taken to cover (its sender's reports began then)
CLEAR_AFTER = 10.0  # seconds without a lossy report before going clean again
MIN_PERCENT, MAX_PERCENT = 5, 25  # what libopus is told to expect: FEC below 5 % buys little, above 25 % costs much


def expected_loss_percent(loss: float) -> int:
    """libopus's `packet_loss_perc` for a recent loss fraction: twice it, within 5-25 %."""
    return max(MIN_PERCENT, min(MAX_PERCENT, round(200 * loss)))


class UplinkPolicy:
    """Says whether our audio should be `clean` or `protected`, and the loss (%) to protect against, from the far
    end's reports: `report(now, fraction_lost, packets_lost)` for each one, `mode` and `loss_percent` to read."""

    def __init__(self, window: float = WINDOW, clear_after: float = CLEAR_AFTER) -> None:
        self.window = window
        self.clear_after = clear_after
        self.mode: Mode = CLEAN
        self.loss_percent = 0  # while protected: what the encoder is told to expect
        self.reports = 0
        self.lossy_reports = 0
        self.switches = 0  # decisions to change mode (the encoder may carry one out a little later)
        self.last_loss = 0.0  # the loss (fraction) that last made it protected
        self._recent: deque[tuple[float, float, float]] = deque()  # (time, loss fraction, seconds covered)
        self._previous: float | None = None  # the time of the last report
        self._last_lossy: float | None = None
        self._cumulative: int | None = None

    @property
    def recent_loss(self) -> float:
        """The loss (fraction) of the last `window` seconds: the reports' fractions weighted by what each covers."""
        covered = sum(span for _, _, span in self._recent)
        return sum(loss * span for _, loss, span in self._recent) / covered if covered else 0.0

    def report(self, now: float, fraction_lost: float, packets_lost: int | None = None) -> Mode:
        """One report block for our stream at `now` (seconds, any monotonic clock): `fraction_lost` as a fraction
        (RTCP's 8-bit field / 256), `packets_lost` the cumulative count when known. Returns the mode."""
        self.reports += 1
        rising = packets_lost is not None and self._cumulative is not None and packets_lost > self._cumulative
        if packets_lost is not None:
            self._cumulative = packets_lost
        span = min(self.window, now - self._previous) if self._previous is not None else FIRST_SPAN
        self._previous = now
        lossy = fraction_lost >= MIN_LOSS or rising
        if lossy:
            self.lossy_reports += 1
            self._last_lossy = now
        self._recent.append((now, max(fraction_lost, MIN_LOSS) if lossy else fraction_lost, max(span, 1e-3)))
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        loss = self.recent_loss
        if self.mode == CLEAN and lossy:
            self.mode = PROTECTED
            self.switches += 1
            self.last_loss = loss
            log.info("uplink protected (Opus VoIP with in-band FEC): the far end reports %.1f %% loss", 100 * loss)
        elif self.mode == PROTECTED and self._last_lossy is not None and now - self._last_lossy >= self.clear_after:
            self.mode = CLEAN
            self.switches += 1
            log.info("uplink clean again (Opus low-delay): no loss reported for %.0f s", now - self._last_lossy)
        self.loss_percent = expected_loss_percent(loss) if self.mode == PROTECTED else 0
        return self.mode
