"""Sound devices through sounddevice (PortAudio), imported only here and only when devices are used."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from voiceclient.errors import DeviceError

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]


def sounddevice() -> Any:
    """The sounddevice module, or one clear line saying what to install."""
    try:
        import sounddevice as sd
    except OSError:
        raise DeviceError(
            "PortAudio is not installed: apt-get install libportaudio2 (or your system's PortAudio package)"
        ) from None
    except ImportError:
        raise DeviceError("sounddevice is not installed: pip install 'voiceclient[device]'") from None
    return sd


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: float
    default_input: bool
    default_output: bool

    def channels(self, kind: Kind) -> int:
        return self.inputs if kind == "input" else self.outputs


def list_devices() -> list[Device]:
    sd = sounddevice()
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except Exception as exc:  # PortAudio errors are not a subclass of anything useful
        raise DeviceError(f"cannot list sound devices: {exc}") from None
    return [
        Device(
            i,
            d["name"],
            apis[d["hostapi"]]["name"],
            d["max_input_channels"],
            d["max_output_channels"],
            d["default_samplerate"],
            i == default_in,
            i == default_out,
        )
        for i, d in enumerate(raw)
    ]


def format_devices(devices: list[Device]) -> str:
    if not devices:
        return "no sound devices (plug one in, or start PulseAudio/PipeWire)"
    lines = [f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<12} name"]
    for d in devices:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        lines.append(
            f"{d.index:>3}{mark}{d.inputs:>3} {d.outputs:>3}  {d.default_rate:>6.0f}  {d.hostapi:<12} {d.name}"
        )
    lines.append("< default input, > default output")
    return "\n".join(lines)


def reinitialise_portaudio() -> None:
    """Make PortAudio look at the devices again: it sees them as they were when it started (python-sounddevice
    issues 125, 382, 493, 601). It closes every open stream, so close yours first."""
    sd = sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except Exception as exc:
        raise DeviceError(f"cannot re-initialise PortAudio: {exc}") from None


def close_stream(stream: Any, what: str) -> None:
    """Stop and close a PortAudio stream; a failure to close is logged, never raised (we are tearing down)."""
    try:
        stream.stop()
        stream.close()
    except Exception as exc:
        log.debug("closing the %s: %s", what, exc)


def find_device(spec: str | int | None, kind: Kind) -> Device:
    """None: the default; an index; or a case-insensitive name substring. Unknown -> the list in the error."""
    devices = list_devices()
    usable = [d for d in devices if d.channels(kind) > 0]
    if not usable:
        raise DeviceError(f"no {kind} device found (plug one in, or start PulseAudio/PipeWire)")
    if spec is None or spec == "":
        chosen = next((d for d in usable if (d.default_input if kind == "input" else d.default_output)), usable[0])
        return chosen
    text = str(spec)
    if text.isdigit():
        match = [d for d in usable if d.index == int(text)]
    else:
        match = [d for d in usable if text.lower() in d.name.lower()]
    if not match:
        names = ", ".join(f"{d.index}: {d.name}" for d in usable)
        raise DeviceError(f"no {kind} device {spec!r}; {kind} devices are {names}")
    return match[0]


def find_or_default(spec: str | int | None, kind: Kind) -> Device:
    """The device asked for; when it is gone, the default, with one line in the log."""
    try:
        return find_device(spec, kind)
    except DeviceError:
        if spec is None or spec == "":
            raise
    chosen = find_device(None, kind)
    log.warning("the %s device %r is gone; using the default, %r", kind, spec, chosen.name)
    return chosen


def stream_failure(
    stream: Any, finished: bool, opened_at: float, last_callback: float, stall: float, startup: float
) -> str | None:
    """Why an open PortAudio stream is not running, or None: it finished (PortAudio stopped it), went inactive,
    or has not called back for `stall` seconds. For `startup` seconds after it opened, gaps are not counted:
    streams through a sound server stall for a moment as they start."""
    if stream is None:
        return None  # not opened, or closed on purpose
    if finished:
        return "was stopped by PortAudio"
    try:
        active = bool(stream.active)
    except Exception:  # a stream whose host API went away
        active = False
    if not active:
        return "is no longer active"
    now = time.monotonic()
    if now - opened_at < startup:
        return None
    if last_callback < opened_at:
        return f"has not called back since it was opened {now - opened_at:.1f} s ago"
    silent = now - last_callback
    return f"has not called back for {silent * 1000:.0f} ms" if silent > stall else None
