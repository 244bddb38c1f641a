"""When the audio we send should carry in-band FEC: a policy fed the far end's RTCP receiver reports.

A clean path gets Opus's low-delay mode (2.5 ms look-ahead, no FEC: CELT packets cannot carry it); a lossy one
gets the VoIP mode with in-band FEC (6.5 ms look-ahead, each packet carrying a low-bitrate copy of the one before,
so the far end rebuilds a lost packet instead of concealing it). The far end tells us about loss in the report
blocks of its RTCP receiver/sender reports for our SSRC (RFC 3550 6.4.1): `fraction_lost` (loss since its previous
report, in 1/256) and the cumulative `packets_lost`. aiortc sends them every 0.5-1.5 s, libwebrtc about every 5 s.

Hysteresis: any report with loss (a fraction of 1 % or more, or the cumulative count rising) makes the uplink
protected at once, with libopus told to expect twice the worst loss of the last few seconds (5-25 %); only
`clear_after` seconds without a lossy report make it clean again. So one burst costs one switch each way, and a
path that keeps losing packets stays protected rather than flapping. Pure: fed times, no clock, no peer.
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
WINDOW = 5.0  # seconds of reports whose worst loss sets the expected loss
CLEAR_AFTER = 10.0  # seconds without a lossy report before going clean again
MIN_PERCENT, MAX_PERCENT = 5, 25  # what libopus is told to expect: FEC below 5 % buys little, above 25 % costs much


def expected_loss_percent(worst: float) -> int:
    """libopus's `packet_loss_perc` for a worst recent loss fraction: twice it, within 5-25 %."""
    return max(MIN_PERCENT, min(MAX_PERCENT, round(200 * worst)))


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
        self._recent: deque[tuple[float, float]] = deque()  # (time, loss fraction) of lossy reports
        self._last_lossy: float | None = None
        self._cumulative: int | None = None

    def report(self, now: float, fraction_lost: float, packets_lost: int | None = None) -> Mode:
        """One report block for our stream at `now` (seconds, any monotonic clock): `fraction_lost` as a fraction
        (RTCP's 8-bit field / 256), `packets_lost` the cumulative count when known. Returns the mode."""
        self.reports += 1
        rising = packets_lost is not None and self._cumulative is not None and packets_lost > self._cumulative
        if packets_lost is not None:
            self._cumulative = packets_lost
        if fraction_lost >= MIN_LOSS or rising:
            self.lossy_reports += 1
            self._last_lossy = now
            self._recent.append((now, max(fraction_lost, MIN_LOSS)))
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        worst = max((loss for _, loss in self._recent), default=0.0)
        if self.mode == CLEAN and self._recent:
            self.mode = PROTECTED
            self.switches += 1
            self.last_loss = worst
            log.info("uplink protected (Opus VoIP with in-band FEC): the far end reports %.1f %% loss", 100 * worst)
        elif self.mode == PROTECTED and self._last_lossy is not None and now - self._last_lossy >= self.clear_after:
            self.mode = CLEAN
            self.switches += 1
            log.info("uplink clean again (Opus low-delay): no loss reported for %.0f s", now - self._last_lossy)
        if self.mode == PROTECTED and worst:  # past the window with no new loss: keep the last expectation
            self.loss_percent = expected_loss_percent(worst)
        elif self.mode == CLEAN:
            self.loss_percent = 0
        return self.mode
