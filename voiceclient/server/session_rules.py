"""The server's view of a session: the full default object, and partial updates merged and validated."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.session import SessionConfig
from voiceclient.protocol.validation import api_error, deep_merge

log = logging.getLogger(__name__)
DEFAULT_MODEL = "gpt-realtime"
DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant running inside voiceclient's embedded Realtime server. "
    "Replies come from the server's responder (echo or a scenario), not from a language model."
)
SESSION_SECONDS = 3600


def check_model(model: str) -> None:
    """A session's model must be a Realtime model (`gpt-realtime`, `gpt-realtime-mini`, `gpt-4o-realtime-preview`
    and their dated snapshots): any other name is `model_not_found`, as the real service answers a model that does
    not exist or is not a Realtime one (a live report: openai-realtime-console issue 561). This server has every
    Realtime model; the real one also refuses a model the key is not entitled to, which cannot be known here."""
    if "realtime" not in model:
        raise ProtocolError(
            f"The model `{model}` does not exist or you do not have access to it.", "model_not_found", status=404
        )


def default_session(model: str | None = None) -> dict[str, Any]:
    """A fresh session as the API shows it in `session.created` (docs/protocol.md, "Session fields")."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model or DEFAULT_MODEL,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + SESSION_SECONDS,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection("server_vad"),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


def default_turn_detection(kind: str) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def check_session(data: Any) -> SessionConfig:
    """Validate a session object from a client; raise ProtocolError with the API's codes."""
    if not isinstance(data, dict):
        raise ProtocolError("The session must be a JSON object.", "invalid_type", "session")
    if "type" not in data:
        raise ProtocolError("Missing required parameter: 'session.type'.", "missing_required_parameter", "session.type")
    try:
        return SessionConfig.model_validate(data)
    except ValidationError as exc:
        code, message, param = api_error(exc.errors(include_url=False)[0], data, "session")
        raise ProtocolError(message, code, param) from None


def apply_update(current: dict[str, Any], update: Any, *, audio_started: bool) -> dict[str, Any]:
    """Merge a `session.update` into the current full session; the current one is untouched on error."""
    patch = check_session(update).to_wire()
    if "model" in patch and patch["model"] != current["model"]:
        # The model is fixed at creation. An update naming another one keeps the model and applies the rest:
        # openai-agents-python sends its default model in every update, over a sideband too (where it may not
        # choose one), so the real service cannot be refusing those updates.
        log.info("session.update named model %r; the session keeps %r", patch["model"], current["model"])
        del patch["model"]
    voice = patch.get("audio", {}).get("output", {}).get("voice")
    if voice is not None and audio_started and voice != current["audio"]["output"]["voice"]:
        raise ProtocolError(
            "Cannot update a conversation's voice if assistant audio is present.",
            "cannot_update_voice",
            None,  # (the real error names no param: openai-agents-python issue 1661)
        )
    if current.get("tracing") not in (None,) and "tracing" in patch and patch["tracing"] != current["tracing"]:
        raise ProtocolError("Tracing cannot be modified once it is enabled.", "invalid_value", "session.tracing")
    td = patch.get("audio", {}).get("input", {}).get("turn_detection", "unset")
    if isinstance(td, dict):  # a new turn_detection object is completed with that type's defaults
        patch["audio"]["input"]["turn_detection"] = {**default_turn_detection(td["type"]), **td}
    merged = deep_merge(current, patch, replace=("turn_detection", "format"))
    noise = merged["audio"]["input"].get("noise_reduction")
    if isinstance(noise, dict) and noise.get("strength") is None:
        # [SDK] NoiseReduction.strength: "Defaults to 1 when noise reduction is first enabled. Omitting strength
        # from a session update preserves the current strength" (the merge above keeps it).
        noise["strength"] = 1.0
    check_session({k: v for k, v in merged.items() if k not in ("object", "id", "expires_at")})
    return merged
