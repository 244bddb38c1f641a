#!/usr/bin/env python3
"""The receive path offline: `bench.py network`'s downlink replayed on a virtual clock, deterministic, in seconds.

Spoken sentences (espeak-ng, as `bench.py network` says them, with room for each echo) are encoded as `serve`
sends them (`SwitchingEncoder`: low-delay while clean, VoIP with in-band FEC once the receiver's reports say loss,
its `UplinkPolicy` fed a report a second), a packet every 20 ms; each packet's fate comes from netem's `LinkModel`
with the profile's downlink and the seed (the same arithmetic as `serve --network`), and it is pushed into
`AdaptiveJitterBuffer` at its arrival on a virtual clock that also runs the buffer's timers. What the buffer emits
is placed on its `pts` timeline (what the speaker and the recording play) and scored as `bench.py network` scores
it: each sentence found by cross-correlation, PESQ wideband against what was sent, in groups of about 10 s.
No real time and no load: a change to the buffer shows as itself.

    .venv/bin/python scripts/jitter_replay.py --profiles clean,wifi,bad-wifi,lossy --seeds 1,2,3 --seconds 12

Per profile: PESQ (median of the seeds), the share of frames concealed or rebuilt, late packets, the mean one-way
delay from sending to playing (network included) and its 95th percentile, audio stretched, resets; per seed with -v.
`--ideal` plays what a buffer that had every packet in time would (the loss alone: libopus's concealment and FEC);
`--report-every 5` feeds serve's FEC policy as a libwebrtc receiver does (aiortc reports about every second);
`--set NAME=VALUE` overrides a constant of `voiceclient/rtc/jitter.py` (`--set expand.NAME=VALUE`: of
`voiceclient/audio/expand.py`, the concealment of long bursts); a profile may be a spec
(`delay_ms=60:jitter_ms=40`, several separated by `;`).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # scripts/bench.py: the speech and the scoring, shared with the live benchmark

from voiceclient.audio import expand, opus
from voiceclient.audio.switching import SwitchingEncoder
from voiceclient.rtc import jitter
from voiceclient.rtc.inline import FEC_BITRATE, OPUS_BITRATE
from voiceclient.rtc.netem import LinkModel
from voiceclient.rtc.uplink import UplinkPolicy
from voiceclient.server.network import parse_network

FRAME = opus.FRAME
RATE = opus.RATE
REPORT_EVERY = 1.0  # seconds between the receiver's RTCP reports (aiortc: 0.5-1.5 s; libwebrtc: about 5 s)


class VirtualLoop:
    """`time()` and `call_at()` of a loop whose clock jumps from one event to the next."""

    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[list[Any]] = []
        self._count = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        entry = [when, next(self._count), callback, False]
        heapq.heappush(self._events, entry)

        class Handle:
            def cancel(self) -> None:
                entry[3] = True

        return Handle()

    def run(self) -> None:
        while self._events:
            at, _, callback, cancelled = heapq.heappop(self._events)
            if not cancelled:
                self.now = max(self.now, at)
                callback()


LOSS_PERCENT: int | None = None  # --loss-percent: what the encoder is told to expect while protected, not the policy's


def encode_as_serve(pcm: np.ndarray, losses: list[bool]) -> list[bytes]:
    """Packets as serve's downlink sends them: the policy fed, each second, the loss of the second before."""
    encoder, policy, packets = SwitchingEncoder(OPUS_BITRATE, FEC_BITRATE), UplinkPolicy(), []
    per_report = round(REPORT_EVERY * RATE / FRAME)
    cumulative = 0
    for i in range(pcm.size // FRAME):
        if i and i % per_report == 0:
            window = losses[i - per_report : i]
            cumulative += sum(window)
            policy.report(i * FRAME / RATE, sum(window) / per_report, cumulative)
        percent = policy.loss_percent if LOSS_PERCENT is None else LOSS_PERCENT
        out, _ = encoder.encode(pcm[i * FRAME : (i + 1) * FRAME], policy.mode == "protected", percent)
        packets += out
    return packets


def link(profile: str, seed: int) -> LinkModel:
    text = profile if "=" in profile else f"down={profile}" if profile != "clean" else "delay_ms=0"
    spec = parse_network(f"{text}:seed={seed}")
    return LinkModel(spec.down, f"replay:{seed}:down")


def ideal(packets: list[bytes], lost: list[bool]) -> tuple[np.ndarray, jitter.JitterStats]:
    """What a buffer that had every packet in time would play: each lost one rebuilt from the next one's FEC when
    that came and carries it, else concealed by libopus."""
    decoder, stats, out = opus.OpusDecoder(), jitter.JitterStats(), []
    for i, packet in enumerate(packets):
        following = packets[i + 1] if i + 1 < len(packets) and not lost[i + 1] else None
        if not lost[i]:
            out.append(decoder.decode(packet))
            stats.played += 1
        elif following is not None and opus.packet_has_fec(following):
            out.append(decoder.recover(following))
            stats.recovered += 1
        else:
            out.append(decoder.conceal())
            stats.concealed += 1
    return np.concatenate(out), stats


def replay(pcm: np.ndarray, profile: str, seed: int, perfect: bool = False) -> dict[str, Any]:
    """One call: (played pcm on its pts timeline, stats). `perfect`: the ideal buffer instead of ours."""
    count = pcm.size // FRAME
    model = link(profile, seed)
    fates = [model.fate(i * FRAME / RATE) for i in range(count)]  # the sender's clock: packet i leaves at i * 20 ms
    packets = encode_as_serve(pcm, [f is None for f in fates])
    if perfect:
        played, stats = ideal(packets, [f is None for f in fates])
        return {
            "played": played,
            "stats": stats,
            "delay": float("nan"),
            "delay95": float("nan"),
            "lost": sum(f is None for f in fates),
        }
    loop = VirtualLoop()
    frames: list[tuple[float, int, np.ndarray]] = []
    delays: list[float] = []

    def emit(frame: np.ndarray, pts: int) -> None:
        frames.append((loop.now, pts, frame))
        delays.append(buffer._offset)  # a packet of RTP time ts plays at offset + ts / RATE; it left at ts / RATE

    buffer = jitter.AdaptiveJitterBuffer(emit, clock=loop.time, call_at=loop.call_at)
    for i, (packet, due) in enumerate(zip(packets, fates, strict=False)):
        if due is not None:
            loop.call_at(due, lambda i=i, p=packet: buffer.push(i & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, p))
    loop.run()
    played = np.zeros(pcm.size + 10 * RATE, np.int16)
    cursor = 0
    for _when, pts, frame in frames:
        at = max(pts, 0)
        if at < cursor:  # (a re-anchor that went back: what a speaker would do, play it next)
            at = cursor
        end = min(at + frame.size, played.size)
        played[at:end] = frame[: end - at]
        cursor = end
    s = buffer.stats
    return {
        "played": played,
        "stats": s,
        "delay": 1000 * float(np.mean(delays)) if delays else float("nan"),
        "delay95": 1000 * float(np.percentile(delays, 95)) if delays else float("nan"),
        "lost": model.stats.lost,
    }


def score(wav: np.ndarray, spans: list[tuple[int, int]], played: np.ndarray) -> float:
    from pesq import pesq

    refs, degs = [], []
    for start, end in spans:
        pos, corr = bench.best_lag(wav[start:end], played, start - RATE // 10, start + RATE)
        if corr < 0.3:
            continue
        refs.append(wav[start - bench.NET_PAD : end + bench.NET_PAD])
        deg = played[max(0, pos - bench.NET_PAD) : pos + (end - start) + bench.NET_PAD]
        degs.append(np.concatenate([deg, np.zeros(refs[-1].size - deg.size, np.int16)]))
    scores, i = [], 0
    while i < len(refs):
        j, n = i, 0
        while j < len(refs) and n < 10 * RATE:
            n += refs[j].size
            j += 1
        scores.append(
            pesq(16_000, bench.to_16k(np.concatenate(refs[i:j])), bench.to_16k(np.concatenate(degs[i:j])), "wb")
        )
        i = j
    return float(np.mean(scores)) if scores else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="clean,wifi,bad-wifi,lossy")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of speech (as bench.py network)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a jitter.py constant (expand.NAME: expand.py's)",
    )
    parser.add_argument("--report-every", type=float, default=1.0, help="seconds between RTCP reports")
    parser.add_argument("--loss-percent", type=int, help="the encoder's expected loss while protected")
    parser.add_argument("--ideal", action="store_true", help="every packet in time, lost ones concealed or rebuilt")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    global LOSS_PERCENT, REPORT_EVERY
    LOSS_PERCENT, REPORT_EVERY = args.loss_percent, args.report_every
    for setting in args.set:
        name, value = setting.split("=", 1)
        module, _, name = name.rpartition(".")
        target = {"": jitter, "expand": expand}.get(module)
        if target is None or not hasattr(target, name):
            parser.error(f"no constant {setting.split('=')[0]} (a name of jitter.py, or expand.NAME)")
        setattr(target, name, type(getattr(target, name))(value))
    with tempfile.TemporaryDirectory() as work:
        wav, spans = bench.network_speech(args.seconds, Path(work) / "speech.wav")
    wav = np.concatenate([wav, np.zeros(RATE, np.int16)])
    print("| profile | PESQ median (mean) | concealed | rebuilt (FEC) | late | delay mean / p95 | stretched | resets |")
    print("|---|---|---|---|---|---|---|---|")
    for profile in args.profiles.split(";" if ";" in args.profiles else ","):
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            r = replay(wav, profile, seed, args.ideal)
            r["pesq"] = score(wav, spans, r["played"])
            s = r["stats"]
            total = s.played + s.recovered + s.concealed
            r["concealed"] = s.concealed / total if total else 0.0
            r["recovered"] = s.recovered / total if total else 0.0
            rows.append(r)
            if args.verbose:
                print(
                    f"  {profile} seed {seed}: PESQ {r['pesq']:.2f}, {r['lost']} lost on the link, "
                    f"{s.concealed} concealed ({s.expanded} expanded), {s.recovered} rebuilt, {s.late} late, "
                    f"delay {r['delay']:.0f} ms "
                    f"(p95 {r['delay95']:.0f}), +{s.added_ms:.0f}/-{s.removed_ms:.0f} ms stretched, {s.resets} resets"
                )

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return float(statistics.median(r[key] for r in rows))

        def stat(name: str, rows: list[dict[str, Any]] = rows) -> float:
            return float(statistics.median(getattr(r["stats"], name) for r in rows))

        mean = statistics.mean(r["pesq"] for r in rows)
        print(
            f"| {profile} | {med('pesq'):.2f} ({mean:.2f}) | {100 * med('concealed'):.1f} % "
            f"| {100 * med('recovered'):.1f} % | {stat('late'):.0f} | {med('delay'):.0f} / {med('delay95'):.0f} ms "
            f"| +{stat('added_ms'):.0f} / -{stat('removed_ms'):.0f} ms | {stat('resets'):.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
