"""The network emulator's model and its spec, on a clock of their own: seeded repeatability, loss and burst
statistics, the in-order rule, stalls, a WebSocket's retransmissions; `--network` and the `network` fault parsed;
the delay line's pump on a real event loop."""

from __future__ import annotations

import asyncio
import itertools
import statistics

import pytest

from voiceclient import ConfigError
from voiceclient.rtc.impair import DelayLine, rtp_sequence
from voiceclient.rtc.inline import RtpWriter
from voiceclient.rtc.netem import TCP_MIN_RTO, LinkModel
from voiceclient.server.faults import parse_fault
from voiceclient.server.network import PROFILES, CallNetwork, LinkSpec, NetworkSpec, parse_network

pytestmark = pytest.mark.timeout(20)
STEP = 0.02  # a packet every 20 ms, as Opus frames go


def fates(model: LinkModel, n: int, step: float = STEP) -> list[float | None]:
    return [model.fate(i * step) for i in range(n)]


def lost_indices(spec: NetworkSpec, call: int, n: int = 2000) -> list[int]:
    model = CallNetwork(spec, call).down
    return [i for i, due in enumerate(fates(model, n)) if due is None]


def bursts(lost: list[bool]) -> list[int]:
    runs, run = [], 0
    for gone in lost:
        if gone:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs


def test_the_same_seed_loses_the_same_packets_and_another_call_others() -> None:
    spec = parse_network("loss=0.1:burst=2:jitter_ms=30:seed=7")
    first = lost_indices(spec, call=1)
    assert first and first == lost_indices(spec, call=1)
    assert first != lost_indices(spec, call=2)
    assert first != lost_indices(parse_network("loss=0.1:burst=2:jitter_ms=30:seed=8"), call=1)
    # the loss draws are apart from the delay draws: the same packets go whatever the delay
    assert first == lost_indices(parse_network("loss=0.1:burst=2:delay_ms=80:seed=7"), call=1)


def lost_places(model: LinkModel, first: int, others: list[int], spurt_at: int, n: int = 1500) -> list[int]:
    """Places lost of an answer of `n` audio packets from sequence `first`, sent after `spurt_at` packets of
    silence; `others[i]` other datagrams go before audio packet i (RTCP, SCTP: as many as a client makes)."""
    lost, sequence = [], first
    for i in range(spurt_at + n):
        for _ in range(others[i % len(others)]):
            model.fate(i * STEP)
        if i == spurt_at:
            model.spurt()
        if model.fate(i * STEP + 0.001, sequence & 0xFFFF) is None and i >= spurt_at:
            lost.append(i - spurt_at)
        sequence += 1
    return lost


def test_audio_loses_the_same_places_of_each_answer_whatever_else_goes_by() -> None:
    spec = parse_network("loss=0.05:burst=3:jitter_ms=30:seed=4")
    one = lost_places(CallNetwork(spec, 1).down, first=100, others=[0, 1, 0, 0, 3], spurt_at=37)
    two = lost_places(CallNetwork(spec, 1).down, first=65_000, others=[2, 0, 5], spurt_at=210)  # it wraps
    assert one == two and 40 < len(one) < 120  # about 5 % of 1500, in bursts
    other_call = lost_places(CallNetwork(spec, 2).down, first=100, others=[0, 1, 0, 0, 3], spurt_at=37)
    assert other_call != one
    model = CallNetwork(spec, 1).down  # the next answer meets losses of its own
    first, second = lost_places(model, 0, [1], 10, n=800), lost_places(model, 900, [1], 10, n=800)
    assert first == [place for place in one if place < 800] and first != second
    # without an answer's start, a stream counts from its first packet: a gap uses up the places it skips
    steady, gapped = CallNetwork(spec, 3).down, CallNetwork(spec, 3).down
    kept = {s: steady.fate(s * STEP, s) is None for s in range(400)}
    assert all((gapped.fate(s * STEP, s) is None) == kept[s] for s in range(400) if s % 7 != 3) and any(kept.values())


def test_rtp_is_told_from_rtcp_dtls_and_stun() -> None:
    rtp = RtpWriter(111, 0x1234, "0", 1, 2, 3).packet(40_000, 960, True, b"opus", ntp_now_fixed(), 30)
    assert rtp_sequence(rtp) == 40_000
    assert rtp_sequence(RtpWriter(0, 7, None, 0, 0, 0).packet(5, 160, False, b"\xff" * 160, 0, None)) == 5
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    receiver_report = bytes([0x81, 201, 0, 7]) + bytes(28)
    assert rtp_sequence(sender_report) is None and rtp_sequence(receiver_report) is None
    assert rtp_sequence(bytes([22, 0xFE, 0xFD]) + bytes(30)) is None  # a DTLS record
    assert rtp_sequence(bytes([0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]) + bytes(12)) is None  # a STUN request


def ntp_now_fixed() -> int:
    return 0xE000_0000_0000_0000


@pytest.mark.parametrize("loss, burst", [(0.005, 1), (0.05, 1), (0.02, 3), (0.2, 1), (0.1, 4)])
def test_the_long_run_loss_and_the_mean_burst_are_the_specs(loss: float, burst: float) -> None:
    model = LinkModel(LinkSpec(loss=loss, burst=burst), "0:1:down")
    lost = [model.lost() for _ in range(20_000)]
    tolerance = 4 * (loss * (1 - loss) * (2 * burst - 1) / 20_000) ** 0.5  # 4 sigma, burstiness widening it
    assert abs(sum(lost) / len(lost) - loss) < tolerance
    runs = bursts(lost)
    expected = burst if burst > 1 else 1 / (1 - loss)  # independent losses still touch now and then
    assert abs(statistics.mean(runs) - expected) < 0.15 * expected


def test_a_link_keeps_order_and_late_packets_arrive_in_bursts() -> None:
    model = LinkModel(LinkSpec(delay_ms=40, jitter_ms=30), "1:1:down")
    dues = [d for d in fates(model, 3000) if d is not None]
    assert dues == sorted(dues)
    delays = [due - i * STEP for i, due in enumerate(dues)]
    assert min(delays) >= 0.04 - 3 * 0.03 - 1e-9 and min(delays) >= 0
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert sum(g < 0.001 for g in gaps) > 100  # packets held by a late one leave together


def test_reorder_lets_some_packets_overtake() -> None:
    model = LinkModel(LinkSpec(delay_ms=40, jitter_ms=30, reorder=0.2), "1:1:down")
    dues = [d for d in fates(model, 3000) if d is not None]
    overtaken = sum(b < a for a, b in itertools.pairwise(dues))
    assert 50 < overtaken < 600


def test_jitter_is_a_spread_around_the_delay_never_below_zero() -> None:
    model = LinkModel(LinkSpec(delay_ms=5, jitter_ms=20, reorder=1), "2:1:down")  # reorder=1: raw draws
    delays = [due - i * STEP for i, due in enumerate(fates(model, 20_000)) if due is not None]
    assert min(delays) == 0
    wide = LinkModel(LinkSpec(delay_ms=200, jitter_ms=20, reorder=1), "2:1:down")
    spread = [due - i * STEP for i, due in enumerate(fates(wide, 20_000)) if due is not None]
    assert abs(statistics.mean(spread) - 0.2) < 0.001 and abs(statistics.stdev(spread) - 0.02) < 0.001


def test_a_stall_holds_every_packet_due_in_it_and_lets_them_go_together() -> None:
    model = LinkModel(LinkSpec(delay_ms=10, stall_ms=300, stall_every_s=2), "3:1:down")
    dues = [d for d in fates(model, 6000) if d is not None]  # two minutes
    assert dues == sorted(dues)
    groups: dict[float, int] = {}
    for due in dues:
        groups[due] = groups.get(due, 0) + 1
    held = [count for count in groups.values() if count > 1]
    assert 30 < len(held) < 100  # about one stall every 2 s
    assert all(12 <= count <= 16 for count in held)  # 300 ms of 20 ms packets, less what was already through


def test_a_reliable_link_loses_nothing_and_stalls_everything_behind_a_loss() -> None:
    model = LinkModel(LinkSpec(delay_ms=30, loss=0.05), "4:1:down", reliable=True)
    dues = fates(model, 2000, step=0.01)
    assert None not in dues and dues == sorted(dues)
    assert model.stats.lost > 50
    delays = [due - i * 0.01 for i, due in enumerate(dues) if due is not None]
    assert max(delays) >= 0.03 + TCP_MIN_RTO - 1e-9
    assert sum(d > 0.031 for d in delays) > model.stats.lost * 5  # the packets behind a loss wait too


def test_a_switch_keeps_order_and_counts_and_draws_afresh() -> None:
    network = CallNetwork(parse_network("delay_ms=500"), call_number=1)
    early = network.down.fate(0.0)
    network.switch(parse_network("loss=0.5:seed=1"))
    later = [network.down.fate(0.001 * i) for i in range(1, 200)]
    assert all(due is None or due >= early for due in later)  # behind what is still in flight
    assert network.down.stats.lost == later.count(None) and 60 < later.count(None) < 140
    assert network.spec.name == "loss=0.5:seed=1"


@pytest.mark.parametrize(
    "text, down, up, seed",
    [
        ("wifi", PROFILES["wifi"].down, PROFILES["wifi"].up, 0),
        ("wifi:seed=3", PROFILES["wifi"].down, PROFILES["wifi"].up, 3),
        ("down=bad-wifi", PROFILES["bad-wifi"].down, LinkSpec(), 0),
        ("up=mobile", LinkSpec(), PROFILES["mobile"].up, 0),
        (
            "delay_ms=40:jitter_ms=20:loss=0.01:seed=2",
            LinkSpec(delay_ms=40, jitter_ms=20, loss=0.01),
            LinkSpec(delay_ms=40, jitter_ms=20, loss=0.01),
            2,
        ),
        ("down.loss=0.05:up.delay_ms=30", LinkSpec(loss=0.05), LinkSpec(delay_ms=30), 0),
        ("lossy:down.loss=0.1", LinkSpec(delay_ms=30, jitter_ms=5, loss=0.1), PROFILES["lossy"].up, 0),
    ],
)
def test_parse_network_takes_profiles_directions_and_keys(text: str, down: LinkSpec, up: LinkSpec, seed: int) -> None:
    spec = parse_network(text)
    assert (spec.down, spec.up, spec.seed, spec.name) == (down, up, seed, text)


def test_the_profiles_keep_the_issues_figures() -> None:
    assert PROFILES["wifi"].down == LinkSpec(delay_ms=40, jitter_ms=20, loss=0.005)
    assert PROFILES["bad-wifi"].down == LinkSpec(delay_ms=60, jitter_ms=40, loss=0.02, burst=3)
    assert PROFILES["lossy"].down == LinkSpec(delay_ms=30, jitter_ms=5, loss=0.05)
    assert all(p.down == p.up for p in PROFILES.values())


@pytest.mark.parametrize(
    "text, message",
    [
        ("nonsense", "network 'nonsense': unknown profile 'nonsense'; the profiles are wifi, bad-wifi, lossy, mobile"),
        ("down=fast", "network 'down=fast': unknown profile 'fast'; the profiles are wifi, bad-wifi, lossy, mobile"),
        ("latency=40", "network 'latency=40': unknown key 'latency'; the keys are delay_ms, jitter_ms, loss, burst,"),
        ("side.loss=0.1", "network 'side.loss=0.1': unknown key 'side.loss'; the keys are delay_ms,"),
        ("loss=lots", "network 'loss=lots': loss='lots' is not a number"),
        ("wifi:seed=x", "network 'wifi:seed=x': seed='x' is not an integer"),
        ("down.loss=2", "network.down.loss: 2.0 is not allowed; must be less than or equal to 1"),
        ("delay_ms=-5", "network.down.delay_ms: -5.0 is not allowed; must be greater than or equal to 0"),
        ("stall_ms=300", "network.down: stall_ms needs stall_every_s (the mean time between stalls)"),
        ("loss=0.9:burst=2", "network.down: loss 0.9 in bursts of 2 cannot be: at most burst/(burst+1)"),
        ("", "network: empty; give a profile (wifi, bad-wifi, lossy, mobile) or KEY=VALUE pairs"),
    ],
)
def test_parse_network_says_what_is_wrong_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_network(text)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_network_fault_takes_a_profile_or_a_spec_with_its_colons() -> None:
    fault = parse_fault("network:network=bad-wifi:call=1:at_seconds=5")
    assert (fault.action, fault.network, fault.call, fault.at_seconds) == ("network", "bad-wifi", 1, 5)
    assert fault.network_spec == PROFILES["bad-wifi"].model_copy(update={"name": "bad-wifi"})
    assert parse_fault("network:network=wifi:seed=3:at_seconds=5").network == "wifi:seed=3"
    assert parse_fault("network:down.loss=0.2:after_turns=1").network_spec.down == LinkSpec(loss=0.2)
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        parse_fault("network:network=fast:at_seconds=1")
    with pytest.raises(ConfigError, match="network needs network=PROFILE_OR_SPEC"):
        parse_fault("network:at_seconds=1")


async def test_a_delay_line_delivers_in_order_on_time_and_leaves_nothing_behind() -> None:
    loop = asyncio.get_running_loop()
    model = LinkModel(LinkSpec(delay_ms=50, jitter_ms=10, loss=0.2), "5:1:down")
    got: list[tuple[int, float]] = []
    all_in = asyncio.Event()

    async def deliver(n: int) -> None:
        got.append((n, loop.time()))
        if len(got) == sent:
            all_in.set()

    line: DelayLine[int] = DelayLine(model, deliver, "test line")
    start = loop.time()
    sent = sum(line.push(n) for n in range(200))
    await asyncio.wait_for(all_in.wait(), 5)
    assert [n for n, _ in got] == sorted(n for n, _ in got)
    assert len(got) == 200 - model.stats.lost and 20 < model.stats.lost < 60
    assert all(t - start >= 0.0 for _, t in got) and got[-1][1] - start >= 0.05 - 0.03
    assert model.stats.passed == len(got) and 40 < model.stats.mean_delay_ms < 90
    held = [line.push(n) for n in range(10)]
    assert line.held == sum(held)
    await line.close()
    assert line.held == 0 and len(got) == sent
    assert {t.get_name() for t in asyncio.all_tasks()} & {"test line"} == set()
