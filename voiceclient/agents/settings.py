"""The SDK's session settings (`RealtimeSessionModelSettings`, what the `RealtimeSession` builds from the agent) as
the session object voiceclient sends, from the SDK's public types only.

The mapping is the one the SDK's WebSocket model makes (its defaults are the SDK's public `DEFAULT_MODEL_SETTINGS`):
the legacy flat fields (`voice`, `input_audio_format`, `turn_detection`...) and the GA `audio` block, the agent's
function tools and handoffs as function tools, instructions, prompt, tool choice, reasoning, tracing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.exceptions import UserError
from agents.handoffs import Handoff
from agents.realtime import DEFAULT_MODEL_SETTINGS
from agents.realtime.config import RealtimeModelTracingConfig, RealtimeSessionModelSettings
from agents.tool import FunctionTool, Tool

# The SDK's legacy format names and the GA ones, as the wire's format objects.
_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "pcm": {"type": "audio/pcm", "rate": 24000},
    "audio/pcm": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "pcmu": {"type": "audio/pcmu"},
    "audio/pcmu": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
    "pcma": {"type": "audio/pcma"},
    "audio/pcma": {"type": "audio/pcma"},
}
# camelCase turn-detection keys (from a JavaScript-shaped config) as the wire's snake_case, as the SDK does
_TURN_KEYS = {
    "createResponse": "create_response",
    "interruptResponse": "interrupt_response",
    "prefixPaddingMs": "prefix_padding_ms",
    "silenceDurationMs": "silence_duration_ms",
    "idleTimeoutMs": "idle_timeout_ms",
    "modelVersion": "model_version",
}


def audio_format(value: Any) -> dict[str, Any] | None:
    """A format as the SDK takes it (`"pcm16"`, `"audio/pcmu"`, `{"type": "audio/pcm", "rate": 24000}`, a pydantic
    format) as the wire's format object; None for None or a format not known (left to the server's default)."""
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    name = value if isinstance(value, str) else (value.get("type") if isinstance(value, Mapping) else None)
    known = _FORMATS.get(name) if isinstance(name, str) else None
    return dict(known) if known is not None else None


def _turn_detection(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = dict(value)
    for camel, snake in _TURN_KEYS.items():
        if camel in out and snake not in out:
            out[snake] = out[camel]
        out.pop(camel, None)
    return out


def _plain(value: Any) -> Any:
    """A settings value (a TypedDict, a pydantic model) as JSON-ready data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def function_tools(tools: list[Tool], handoffs: list[Handoff[Any, Any]]) -> list[dict[str, Any]]:
    """The agent's function tools, then its handoffs, as the session's function tools (statically disabled ones
    left out; anything but a function tool refused, as the SDK's model refuses it)."""
    out: list[dict[str, Any]] = []
    names: list[str] = []
    for tool in tools:
        if not isinstance(tool, FunctionTool):
            raise UserError(f"Tool {tool.name} is unsupported. Must be a function tool.")
        if tool.is_enabled is False:
            continue
        names.append(tool.name)
        out.append(
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.params_json_schema,
            }
        )
    for handoff in handoffs:
        if handoff.is_enabled is False:
            continue
        names.append(handoff.tool_name)
        out.append(
            {
                "type": "function",
                "name": handoff.tool_name,
                "description": handoff.tool_description,
                "parameters": handoff.input_json_schema,
            }
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"Realtime tool names must be unique: {', '.join(repeated)} repeated")
    return out


def tracing_wire(tracing: RealtimeModelTracingConfig | str | None) -> Any:
    """The SDK's tracing setting as the session's `tracing` (None: not sent)."""
    if tracing is None or tracing == "auto":
        return tracing
    if isinstance(tracing, Mapping):
        fields = {k: tracing.get(k) for k in ("workflow_name", "group_id", "metadata")}
        return {k: v for k, v in fields.items() if v is not None}
    return None


def session_wire(settings: RealtimeSessionModelSettings, model: str | None = None) -> dict[str, Any]:
    """The session object (wire JSON) for the SDK's settings; `model` when the settings name none."""
    defaults: Mapping[str, Any] = DEFAULT_MODEL_SETTINGS
    audio: Mapping[str, Any] = settings.get("audio") or {}
    given_in: Mapping[str, Any] = audio.get("input") or {}
    given_out: Mapping[str, Any] = audio.get("output") or {}

    audio_in: dict[str, Any] = {}
    fmt = audio_format(given_in.get("format") or settings.get("input_audio_format", defaults["input_audio_format"]))
    if fmt is not None:
        audio_in["format"] = fmt
    if "noise_reduction" in given_in:
        audio_in["noise_reduction"] = _plain(given_in["noise_reduction"])
    elif "input_audio_noise_reduction" in settings:
        audio_in["noise_reduction"] = _plain(settings["input_audio_noise_reduction"])
    if "transcription" in given_in:
        audio_in["transcription"] = _plain(given_in["transcription"])
    else:
        audio_in["transcription"] = _plain(
            settings.get("input_audio_transcription", defaults["input_audio_transcription"])
        )
    if "turn_detection" in given_in:
        audio_in["turn_detection"] = _turn_detection(_plain(given_in["turn_detection"]))
    else:
        audio_in["turn_detection"] = _turn_detection(_plain(settings.get("turn_detection", defaults["turn_detection"])))

    audio_out: dict[str, Any] = {"voice": _plain(given_out.get("voice") or settings.get("voice", defaults["voice"]))}
    fmt = audio_format(given_out.get("format") or settings.get("output_audio_format", defaults["output_audio_format"]))
    if fmt is not None:
        audio_out["format"] = fmt
    if "speed" in given_out:
        audio_out["speed"] = given_out["speed"]
    elif "speed" in settings:
        audio_out["speed"] = settings["speed"]

    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": list(
            settings.get("output_modalities") or settings.get("modalities") or defaults["modalities"]
        ),
        "audio": {"input": audio_in, "output": audio_out},
        "tools": function_tools(list(settings.get("tools") or []), list(settings.get("handoffs") or [])),
    }
    name = settings.get("model_name") or model
    if name:
        session["model"] = name
    if "instructions" in settings:
        session["instructions"] = settings["instructions"]
    if "max_output_tokens" in settings:
        session["max_output_tokens"] = settings["max_output_tokens"]
    if settings.get("parallel_tool_calls") is not None:
        session["parallel_tool_calls"] = settings["parallel_tool_calls"]
    if settings.get("reasoning") is not None:
        session["reasoning"] = _plain(settings["reasoning"])
    if "prompt" in settings:
        prompt = settings["prompt"]
        fields = {"id": prompt["id"], "version": prompt.get("version"), "variables": _plain(prompt.get("variables"))}
        session["prompt"] = {k: v for k, v in fields.items() if v is not None}
    if "tool_choice" in settings:
        session["tool_choice"] = _plain(settings["tool_choice"])
    return session
