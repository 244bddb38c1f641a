"""An Opus stream that moves between low-delay (no FEC) and VoIP with in-band FEC with neither a cut nor a doubled
stretch of audio, and with continuous timestamps.

libopus fixes the restricted low-delay application when an encoder is created (`OPUS_SET_APPLICATION` cannot move
an encoder into or out of it), so a switch is a fresh encoder, and the two look ahead by different amounts (2.5 ms
and 6.5 ms). The old encoder's packets end that look-ahead before what it was fed, so the new encoder reads the
stream again from there: nothing is cut, nothing repeated. A fresh encoder's first packet starts with its
look-ahead of silence (its delay line starts empty); libopus's decoder cross-fades the first 2.5 ms of a CELT/SILK
mode change from its concealment of the old stream, so what is heard is at most a 4 ms dip, going to FEC. Priming
the new encoder with frames that are not sent would fill it, but then the encoder's SILK state (gains, pitch) is
not the decoder's: measured, the level then dips for 200 ms, far worse. So switches wait for a quiet frame (a pause
between words: no dip to hear), up to a deadline.

The stream is then behind by the new look-ahead (delayed, not cut); that delay is dropped at the next quiet moment,
so a clean path after a lossy spell is back to low-delay's latency. RTP timestamps count the samples sent.
"""

from __future__ import annotations

import numpy as np

from voiceclient.audio import opus

FRAME = opus.FRAME
HISTORY = FRAME  # samples kept behind the encoder: more than any look-ahead, which a switch reads again
QUIET_RMS = 32768 * 10 ** (-45 / 20)  # -45 dBFS: a pause between words, or silence
PROTECT_DEADLINE = 25  # frames (0.5 s) a switch to FEC waits for a quiet frame: packets are being lost meanwhile
CLEAN_DEADLINE = 250  # frames (5 s) a switch back waits: no hurry, a pause will come
LOWDELAY_COMPLEXITY = 10  # what FFmpeg's libopus wrapper used: the clean path costs what it did
FEC_COMPLEXITY = 5  # measured on speech: 173 us a frame (220 at 10, 63 low-delay); lost frames rebuilt 1 dB worse


class SwitchingEncoder:
    """Mono 48 kHz int16 in 20 ms frames to Opus packets: `encode(pcm, protect, loss_percent)` returns the packets
    (one per frame) and the first one's timestamp, in samples since the first packet. `protect` asks for the VoIP
    application with in-band FEC tuned to `loss_percent`; the switch itself happens at a quiet frame or a deadline.
    """

    def __init__(
        self,
        bitrate: int,
        fec_bitrate: int | None = None,
        lowdelay_complexity: int = LOWDELAY_COMPLEXITY,
        fec_complexity: int = FEC_COMPLEXITY,
    ) -> None:
        self.bitrates = {opus.LOWDELAY: bitrate, opus.VOIP: fec_bitrate or bitrate}
        self.complexities = {opus.LOWDELAY: lowdelay_complexity, opus.VOIP: fec_complexity}
        self.encoder = opus.OpusEncoder(bitrate, opus.LOWDELAY, lowdelay_complexity)
        self.protected = False
        self.switches = 0
        self.dropped = 0  # samples of added delay dropped at quiet moments
        self.fed = 0  # samples given to encode()
        self.sent = 0  # samples sent as packets: the next packet's timestamp
        self._buf = np.zeros(HISTORY, np.int16)  # the stream the encoders read; the encoder starts on silence
        self._head = HISTORY  # index of the next sample to encode
        self._waiting = 0  # frames a wanted switch has waited

    @property
    def delay(self) -> int:
        """Samples held back beyond the encoder's own look-ahead (added by switches, dropped at quiet moments)."""
        return self._buf.size - self._head - (self.fed - self.sent)

    @property
    def lookahead(self) -> int:
        return self.encoder.lookahead

    def encode(self, pcm: np.ndarray, protect: bool, loss_percent: int = 0) -> tuple[list[bytes], int]:
        pcm = np.asarray(pcm, np.int16).reshape(-1)
        self._buf = np.concatenate((self._buf, pcm))
        self.fed += pcm.size
        pending_switch = protect != self.protected
        quiet = (pending_switch or self.delay > 0) and self._quiet()  # (only looked at when it matters)
        if pending_switch:
            self._waiting += 1
            deadline = PROTECT_DEADLINE if protect else CLEAN_DEADLINE
            if quiet or self.sent == 0 or self._waiting >= deadline:
                self._switch(protect, loss_percent)
        else:
            self._waiting = 0
            if protect and loss_percent != self.encoder.loss_percent:
                self.encoder.set_fec(True, loss_percent)
        if quiet and self.delay > 0:
            self._drop(self.delay)
        timestamp = self.sent
        packets = []
        while self.sent + FRAME <= self.fed:
            packets.append(self.encoder.encode(self._buf[self._head : self._head + FRAME]))
            self._head += FRAME
            self.sent += FRAME
        keep = self._head - HISTORY
        if keep > 0:
            self._buf = self._buf[keep:]
            self._head -= keep
        return packets, timestamp

    def _quiet(self) -> bool:
        pending = self._buf[self._head :].astype(np.float64)
        return bool(pending.size and np.sqrt(np.mean(pending * pending)) <= QUIET_RMS)

    def _switch(self, protect: bool, loss_percent: int) -> None:
        application = opus.VOIP if protect else opus.LOWDELAY
        new = opus.OpusEncoder(self.bitrates[application], application, self.complexities[application])
        if protect:
            new.set_fec(True, loss_percent)
        if self.sent:  # the old encoder's packets end `lookahead` samples before what it was fed: read from there
            self._head -= self.encoder.lookahead
        self.encoder.close()
        self.encoder = new
        self.protected = protect
        self.switches += 1
        self._waiting = 0

    def _drop(self, samples: int) -> None:
        self._buf = np.concatenate((self._buf[: self._head], self._buf[self._head + samples :]))
        self.dropped += samples
