"""`voiceclient talk` when the sound system changes under it, on PulseAudio's virtual devices (as the `talk`
tests): the sound server killed and started again mid-call, and the devices in use replaced by new defaults. Each
is followed by a spoken turn heard at the speaker, in the same call."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig
from voiceclient.audio.format import API_RATE, tone
from voiceclient.server import RealtimeServer

from .test_talk import cuts, one_turn, wav

pytestmark = pytest.mark.timeout(120)


async def speak_and_listen(
    pulse: dict[str, str], said: Path, seconds: float, microphone: str = "vmicsink", speaker: str = "vspk"
) -> np.ndarray:
    """Play `said` into the virtual microphone and record the virtual speaker for `seconds`."""
    out = said.with_suffix(".heard.wav")
    recorder = subprocess.Popen(
        [
            "parecord",
            f"--device={speaker}.monitor",
            "--channels=1",
            "--rate=24000",
            "--format=s16le",
            "--file-format=wav",
            str(out),
        ],
        env=pulse,
    )
    await asyncio.sleep(0.3)
    player = subprocess.Popen(["paplay", f"--device={microphone}", str(said)], env=pulse)
    await asyncio.sleep(seconds)
    recorder.terminate()
    await asyncio.to_thread(recorder.wait, 10)
    await asyncio.to_thread(player.wait, 10)
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


async def start_talk(server: RealtimeServer, tmp_path: Path) -> tuple[Any, asyncio.Future[None], list[str]]:
    from voiceclient.app.talk import Talk

    screen = tmp_path / "screen.txt"
    talk = Talk(
        ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc"),
        SessionConfig(),
        aec="off",
        commands=asyncio.Queue(),
        stream=open(screen, "w", buffering=1),
    )
    task = asyncio.ensure_future(talk.run(max_duration=90))
    while talk.call is None or talk.call.state.value != "connected":
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # PulseAudio streams stall for a moment after they start
    return talk, task, []


async def stop_talk(talk: Any, task: asyncio.Future[None]) -> None:
    assert talk.commands is not None
    talk.commands.put_nowait("/q")
    await asyncio.wait_for(task, 15)


async def until_delivering(stream: Any, steady: float = 0.5, timeout: float = 20.0) -> None:
    """Wait until `stream`'s device callbacks have come without a stall for `steady` seconds. After the devices
    change, PulseAudio moves the stream and the new virtual microphone stays silent until its first block; if that
    outlasts the guard's patience the guard reopens it. A turn said before the stream is steady can be cut in two
    by that reopening (one turn heard as two, its echo in two pieces), so the test waits for this, not a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    since: float | None = None
    while loop.time() < deadline:
        now = time.monotonic()
        delivering = now - stream.last_callback < 0.1 and stream.last_callback >= stream.opened_at
        since = (since or now) if delivering else None
        if since is not None and now - since >= steady:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the {stream.what} did not deliver steadily within {timeout} s")


def turn(path: Path, frequency: float) -> Path:
    return wav(path, np.concatenate([tone(frequency, 0.8, API_RATE), np.zeros(API_RATE // 2, np.int16)]))


async def test_the_sound_server_restarting_mid_call_is_survived(pulse, tmp_path: Path) -> None:
    """PulseAudio killed and started again (a crash, a suspend): both streams die with it. The guard reopens them
    on the new server and the same call goes on: the next turn is heard by the server and answered at the speaker."""
    from voiceclient.testing.devices import restart_sound_server

    async with RealtimeServer(port=0) as server:
        talk, task, _ = await start_talk(server, tmp_path)
        call_id = talk.call.call_id
        before = await speak_and_listen(pulse, turn(tmp_path / "a.wav", 440), 3.5)
        loop = asyncio.get_running_loop()
        killed = loop.time()
        await asyncio.to_thread(restart_sound_server, pulse)
        while talk.guard.recoveries < 1:
            await asyncio.sleep(0.02)
        reopened = loop.time() - killed
        await until_delivering(talk.mic)  # the new microphone stream delivering
        hearing = loop.time() - killed
        after = await speak_and_listen(pulse, turn(tmp_path / "b.wav", 660), 4.0)
        same_call, switches = talk.call.call_id == call_id, talk.call.switches
        await stop_talk(talk, task)
        user_turns = server.history[-1].conversation.user_audio()
        counted = cuts(talk)
    print(
        f"sound server restart: streams reopened {reopened:.2f} s, "
        f"microphone steady for 0.5 s {hearing:.2f} s after the kill"
    )
    one_turn(before, 440, counted)
    one_turn(after, 660, counted)  # the whole turn, echoed, at the speaker of the new server
    assert same_call and switches == 0 and len(user_turns) == 2
    assert talk.guard.recoveries == 1
    lines = (tmp_path / "screen.txt").read_text().splitlines()
    [said] = [line for line in lines if "sound: the" in line and "reopened in" in line]
    assert "microphone and speaker" in said
    assert reopened < 10


def pactl(pulse: dict[str, str], *args: str) -> str:
    return subprocess.run(["pactl", *args], env=pulse, check=True, capture_output=True, text=True).stdout.strip()


async def test_new_default_devices_mid_call_carry_the_conversation(pulse, tmp_path: Path) -> None:
    """A headset plugged in and the laptop's devices gone: new defaults loaded, the old ones unloaded mid-call.
    The next turn is said into the new microphone and its echo heard at the new speaker, in the same call."""
    from voiceclient.testing.devices import restart_sound_server

    try:
        async with RealtimeServer(port=0) as server:
            talk, task, _ = await start_talk(server, tmp_path)
            call_id = talk.call.call_id
            before = await speak_and_listen(pulse, turn(tmp_path / "a.wav", 440), 3.5)
            old = [
                line.split("\t")[0]
                for line in pactl(pulse, "list", "short", "modules").splitlines()
                if "vspk" in line or "vmic" in line
            ]
            pactl(pulse, "load-module", "module-null-sink", "sink_name=hspk", "rate=48000", "channels=2")
            pactl(pulse, "load-module", "module-null-sink", "sink_name=hmicsink", "rate=48000", "channels=1")
            pactl(pulse, "load-module", "module-remap-source", "source_name=hmic", "master=hmicsink.monitor")
            pactl(pulse, "set-default-sink", "hspk")
            pactl(pulse, "set-default-source", "hmic")
            for module in reversed(old):  # the remapped microphone first, then the sinks under it
                pactl(pulse, "unload-module", module)
            await until_delivering(talk.mic)  # the moved stream going on, or the guard's reopened one
            after = await speak_and_listen(
                pulse, turn(tmp_path / "b.wav", 660), 4.0, microphone="hmicsink", speaker="hspk"
            )
            same_call, switches = talk.call.call_id == call_id, talk.call.switches
            await stop_talk(talk, task)
            user_turns = server.history[-1].conversation.user_audio()
            counted = cuts(talk)
        sound = [line for line in (tmp_path / "screen.txt").read_text().splitlines() if "sound:" in line]
    finally:
        await asyncio.to_thread(restart_sound_server, pulse)  # the devices the other tests use, as they were
    one_turn(before, 440, counted)
    one_turn(after, 660, counted)
    assert same_call and switches == 0 and len(user_turns) == 2
    # PulseAudio moves both streams to the new defaults. The speaker's goes on; the microphone's stalls while the
    # new virtual microphone starts (its null sink's first block, under 2 s), and goes on by itself, or, if that
    # outlasts the guard's 2.5 s, is reopened alone: whatever is said about the sound never names the speaker,
    # whose stream stayed open.
    assert all("the microphone stopped" in line and "speaker" not in line for line in sound), sound


class FakeStream:
    """A stream whose failure and reopening the test decides."""

    def __init__(self, what: str, opens: list[bool] | None = None) -> None:
        self.what = what
        self.spec: str | int | None = None
        self.broken: str | None = None
        self.opens = opens or []  # results of the next reopen() calls (True: it opens); then True
        self.reopened = 0
        self.closed = 0

    def failure(self, stall: float, startup: float) -> str | None:
        return self.broken

    def reopen(self) -> None:
        from voiceclient.errors import DeviceError

        if self.opens and not self.opens.pop(0):
            raise DeviceError(f"cannot open {self.what}")
        self.reopened += 1
        self.broken = None

    def close(self) -> None:
        self.closed += 1


@pytest.mark.timeout(10)
async def test_the_guard_reopens_only_the_failed_stream_else_both_after_reinitialising(monkeypatch) -> None:
    from voiceclient.audio import recovery

    reinits: list[int] = []
    monkeypatch.setattr(recovery, "reinitialise_portaudio", lambda: reinits.append(1))
    mic, speaker = FakeStream("microphone"), FakeStream("speaker")
    lines: list[str] = []
    guard = recovery.StreamGuard([mic, speaker], lines.append, retry=0.01)
    mic.broken = "has not called back for 400 ms"
    await guard.recover([(mic, mic.broken)])
    assert (mic.reopened, speaker.reopened, speaker.closed, reinits) == (1, 0, 0, [])  # the speaker left running
    # The microphone cannot be reopened as it is (its device went with the sound server): PortAudio is
    # re-initialised and both are reopened; while even that fails, one line says it waits.
    mic.opens = [False, False, False, True]
    await guard.recover([(mic, "was stopped by PortAudio")])
    assert reinits == [1, 1] and mic.reopened == 2 and speaker.reopened == 1  # (closed by each re-initialising)
    assert guard.recoveries == 2
    assert [line.split(" (")[0] for line in lines] == [
        "sound: the microphone stopped",
        "sound: the microphone stopped and cannot be reopened yet",
        "sound: the microphone stopped",
    ]
    assert lines[-1].endswith("(recovery 2)")


async def test_devices_are_listed_and_chosen_live_with_d(pulse, tmp_path: Path) -> None:
    """`/d` lists the devices and which are in use; `/d out N` moves the speaker live (the call goes on and the
    next echo is heard through it); an unknown number changes nothing and says why."""
    from voiceclient.audio.devices import list_devices

    async with RealtimeServer(port=0) as server:
        talk, task, _ = await start_talk(server, tmp_path)
        screen = tmp_path / "screen.txt"

        async def said(text: str) -> str:
            for _ in range(100):
                lines = [line for line in screen.read_text().splitlines() if text in line]
                if lines:
                    return lines[-1]
                await asyncio.sleep(0.05)
            raise AssertionError(f"{text!r} never said:\n{screen.read_text()}")

        talk.commands.put_nowait("/d")
        listing = await said("in use: microphone")
        # (the device in use by its own name: PortAudio lists ALSA's "default" first, but under load its probe of
        # it through PulseAudio can fail, and "pulse" is then the first device: seen once in a full run)
        assert f"speaker {talk.speaker.device.index} ({talk.speaker.device.name})" in listing
        assert "pulse" in screen.read_text()  # PortAudio's ALSA devices through PulseAudio: pulse and default
        other = next(d for d in list_devices() if d.outputs and d.index != talk.speaker.device.index)
        talk.commands.put_nowait(f"/d out {other.index}")
        assert await said(f"(speaker: {other.name} [{other.index}])")
        talk.commands.put_nowait("/d out 99")
        assert "no output device '99'" in await said("(device not changed")
        after = await speak_and_listen(pulse, turn(tmp_path / "b.wav", 660), 4.0)
        device = talk.speaker.device
        await stop_talk(talk, task)
    assert device.index == other.index
    one_turn(after, 660, cuts(talk))


async def test_a_new_system_default_moves_the_unpinned_streams(pulse, tmp_path: Path) -> None:
    """Where the system does not move streams to a new default (macOS, Windows), talk does: its helper reports the
    defaults, and on a change PortAudio is re-initialised and the streams reopened, in the call. Here the helper's
    report is a stand-in saying the default output changed (PulseAudio's own default never changes name for
    PortAudio); what follows is real: both streams reopened, the next turn heard and echoed."""
    import sys

    from voiceclient.app.talk import Talk

    report = (
        "import json, time; say = lambda o: print(json.dumps({'input': 'default', 'output': o}), flush=True);"
        " say('default'); time.sleep(2); say('Headset'); time.sleep(120)"
    )
    async with RealtimeServer(port=0) as server:
        talk = Talk(
            ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc"),
            SessionConfig(),
            aec="off",
            commands=asyncio.Queue(),
            follow_defaults=True,
            stream=open(tmp_path / "screen.txt", "w", buffering=1),
        )
        talk.defaults.command = [sys.executable, "-c", report]
        task = asyncio.ensure_future(talk.run(max_duration=60))
        while talk.defaults.changes < 1:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        while talk.mic.last_callback < talk.mic.opened_at:
            await asyncio.sleep(0.02)
        after = await speak_and_listen(pulse, turn(tmp_path / "b.wav", 660), 4.0)
        switches = talk.call.switches
        await stop_talk(talk, task)
    one_turn(after, 660, cuts(talk))
    assert switches == 0
    lines = (tmp_path / "screen.txt").read_text()
    assert "sound: following the new default: speaker 'default'" in lines
    assert talk.guard.recoveries == 0  # a move, not a failure


async def test_the_default_device_helper_reports_what_portaudio_sees(pulse) -> None:
    """The helper process (its own PortAudio, re-initialised each look) reports the defaults; here PortAudio's
    default devices are PulseAudio's `default`."""
    from voiceclient.audio.defaults import DefaultWatch

    async def changed(kinds: list[str]) -> None:
        raise AssertionError(f"no default changed here, yet {kinds}")

    watch = DefaultWatch(changed, interval=0.2)
    task = asyncio.ensure_future(watch.run())
    try:
        while watch.defaults is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a few more looks: the same
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert watch.defaults == {"input": "default", "output": "default"} and watch.changes == 0
    assert watch._proc is None  # the helper is gone with the watch
