"""Virtual audio devices for tests of device mode (`talk`): a PulseAudio daemon of the test's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from voiceclient.errors import ConfigError

MODULES = [
    "--load=module-native-protocol-unix",
    "--load=module-null-sink sink_name=vspk rate=48000 channels=2",
    "--load=module-null-sink sink_name=vmicsink rate=48000 channels=1",
    "--load=module-remap-source source_name=vmic master=vmicsink.monitor",
    "--load=module-always-sink",
]


def _start_daemon(env: dict[str, str]) -> None:
    subprocess.run(
        ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--disallow-exit", *MODULES],
        env=env,
        check=True,
        capture_output=True,
    )
    for _ in range(100):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    subprocess.run(["pactl", "set-default-sink", "vspk"], env=env, check=True, capture_output=True)
    subprocess.run(["pactl", "set-default-source", "vmic"], env=env, check=True, capture_output=True)


def restart_sound_server(env: dict[str, str]) -> None:
    """Kill the daemon of `virtual_audio_devices` and start it again with the same devices, as after a crash or a
    suspend: every stream of every client is cut, and the devices come back under the same names."""
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)
    for _ in range(100):  # until it is gone
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            break
        time.sleep(0.05)
    _start_daemon(env)


@contextlib.contextmanager
def virtual_audio_devices() -> Iterator[dict[str, str]]:
    """A PulseAudio daemon of its own with a virtual speaker (`vspk`, a null sink) and microphone (`vmic`, remapped
    from the `vmicsink` monitor: what is played into `vmicsink` is heard by the microphone). Yields the environment
    for `paplay`/`parecord`; this process's PortAudio finds it through XDG_RUNTIME_DIR (set before sounddevice is
    first imported). Needs Debian's pulseaudio, pulseaudio-utils and libasound2-plugins."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        raise ConfigError("PulseAudio is not installed: apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    runtime = tempfile.mkdtemp(prefix="vc-pulse-")
    os.chmod(runtime, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
    env.pop("PULSE_SERVER", None)
    _start_daemon(env)
    old = os.environ.get("XDG_RUNTIME_DIR")
    try:
        os.environ["XDG_RUNTIME_DIR"] = runtime
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old
        shutil.rmtree(runtime, ignore_errors=True)
