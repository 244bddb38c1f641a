"""The expander that conceals a long burst of loss (NetEq's Expand and Merge), on real Opus packets of a voiced tone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from voiceclient.audio import expand, opus
from voiceclient.audio.format import dominant_frequency

pytestmark = pytest.mark.timeout(30)
F0 = 180.0  # a low voice, with harmonics as a voice has
BURST = 12  # lost packets: 240 ms


def voiced(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * opus.RATE)) / opus.RATE
    wave = sum(amp * np.sin(2 * np.pi * F0 * k * t + k) for k, amp in ((1, 6000), (2, 3000), (3, 1500), (4, 800)))
    return np.asarray(wave).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def conceal_a_burst(first_lost: int = 30) -> tuple[np.ndarray, np.ndarray, int, expand.Expander]:
    """(what the expander played, what libopus alone played, the first lost frame's start, the expander): packets
    of a steady voiced tone encoded as serve sends them under loss (VoIP with FEC), `BURST` of them lost."""
    pcm = voiced(1.5)
    encoder = opus.OpusEncoder(32_000, opus.VOIP)
    encoder.set_fec(True, 10)
    packets = [encoder.encode(pcm[i : i + opus.FRAME]) for i in range(0, pcm.size - opus.FRAME + 1, opus.FRAME)]
    ours, alone = opus.OpusDecoder(), opus.OpusDecoder()
    expander = expand.Expander()
    played, plain = [], []
    for i, packet in enumerate(packets):
        if first_lost <= i < first_lost + BURST:
            out = expander.conceal(ours.conceal())
            plain.append(alone.conceal())
        else:
            out = expander.join(ours.decode(packet))
            plain.append(alone.decode(packet))
        expander.played(out)
        played.append(out)
    return np.concatenate(played), np.concatenate(plain), first_lost * opus.FRAME, expander


def test_a_burst_in_a_voiced_tone_goes_on_at_its_pitch_then_fades() -> None:
    played, plain, start, expander = conceal_a_burst()
    assert expander.expanded == BURST - 1  # the first lost frame is libopus's; it has faded by the second
    level = rms(played[start - 3 * opus.FRAME : start])
    assert dominant_frequency(played[start : start + 3 * opus.FRAME], opus.RATE) == pytest.approx(F0, abs=5)
    ours = played[start + opus.FRAME : start + 4 * opus.FRAME]  # 20-80 ms into the burst: the expansion
    assert dominant_frequency(ours, opus.RATE) == pytest.approx(F0, abs=5)
    assert rms(ours) > 0.6 * level
    assert rms(ours) > 10 * rms(plain[start + opus.FRAME : start + 4 * opus.FRAME])  # libopus alone: near silence
    end = played[start + (BURST - 1) * opus.FRAME : start + BURST * opus.FRAME]
    assert rms(end) < 0.02 * level  # faded out well before the end of 240 ms
    half = opus.FRAME // 2
    envelope = [rms(played[start + k * half : start + (k + 1) * half]) for k in range(3, 2 * BURST)]
    assert all(b <= a * 1.15 + 50 for a, b in itertools.pairwise(envelope))  # it only ever fades


def test_no_click_in_the_burst_or_at_the_join() -> None:
    played, _, start, _ = conceal_a_burst()
    steady = np.abs(np.diff(played[:start].astype(np.int64)))[opus.FRAME :].max()  # the tone's own steepest step
    steps = np.abs(np.diff(played.astype(np.int64)))
    burst = steps[start - opus.FRAME : start + (BURST + 2) * opus.FRAME]  # into the burst, through it, and the join
    assert burst.max() <= 1.3 * steady
    joined = start + BURST * opus.FRAME
    after = played[joined : joined + 4 * opus.FRAME]
    assert dominant_frequency(after[2 * opus.FRAME :], opus.RATE) == pytest.approx(F0, abs=10)


def test_a_lone_lost_frame_is_libopus_own_and_silence_stays_silence() -> None:
    expander = expand.Expander()
    plc = voiced(0.02)
    assert np.array_equal(expander.conceal(plc), plc)  # one lost frame: libopus's concealment, as it was
    real = voiced(0.02)
    assert np.array_equal(expander.join(real), real)  # nothing of ours to merge
    quiet = expand.Expander()
    quiet.played(np.zeros(opus.FRAME * 3, np.int16))
    for _ in range(expand.KEEP):
        quiet.conceal(np.zeros(opus.FRAME, np.int16))
    assert not quiet.conceal(np.zeros(opus.FRAME, np.int16)).any()
