"""Sound devices through sounddevice (PortAudio), imported only here and only when devices are used."""

from __future__ import annotations

import logging
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
        raise DeviceError("PortAudio is not installed: apt-get install libportaudio2 "
                          "(or your system's PortAudio package)") from None
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
    return [Device(i, d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"], d["max_output_channels"],
                   d["default_samplerate"], i == default_in, i == default_out) for i, d in enumerate(raw)]


def format_devices(devices: list[Device]) -> str:
    if not devices:
        return "no sound devices (plug one in, or start PulseAudio/PipeWire)"
    lines = [f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<12} name"]
    for d in devices:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        lines.append(f"{d.index:>3}{mark}{d.inputs:>3} {d.outputs:>3}  {d.default_rate:>6.0f}  {d.hostapi:<12} "
                     f"{d.name}")
    lines.append("< default input, > default output")
    return "\n".join(lines)


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
