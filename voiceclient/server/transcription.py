"""The schema of a transcription session (`session.type: "transcription"`): its full default object, and partial
updates merged and validated, as `server/session_rules.py` is a realtime session's.

A transcription session has no model and makes no responses: it buffers input audio, commits it by turn detection
(or `input_audio_buffer.commit`) and transcribes each committed turn. Its object, as the openai SDK's
`RealtimeTranscriptionSessionCreateRequest` / `...CreateResponse` describe it: `type`, `audio.input` (`format`,
`transcription`, `noise_reduction`, `turn_detection`) and `include`; here also `object`, `id` and `expires_at`, as a
realtime session carries them. What a client sends is `protocol.session.TranscriptionSessionConfig` (the client's
model too). Only the Realtime dialect (`server/realtime.py`) uses this module.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.session import TranscriptionSessionConfig
from voiceclient.protocol.validation import api_error, deep_merge

SESSION_SECONDS = 3600
OBJECT = "realtime.transcription_session"
# The transcription a session has when the client names none: a transcription session exists to transcribe, so it
# is on (the real service's default is not documented; `audio.input.transcription: null` turns it off).
DEFAULT_TRANSCRIPTION: dict[str, Any] = {"model": "gpt-4o-mini-transcribe", "language": None, "prompt": ""}
LOGPROBS = "item.input_audio_transcription.logprobs"


def default_turn_detection(kind: str) -> dict[str, Any]:
    """A transcription session's turn detection of `kind` with its defaults (the SDK's: silence 500 ms)."""
    if kind == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": "auto"}
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def default_transcription_session() -> dict[str, Any]:
    """A fresh transcription session, as `session.created` shows it."""
    return {
        "type": "transcription",
        "object": OBJECT,
        "id": new_id("sess"),
        "expires_at": int(time.time()) + SESSION_SECONDS,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": dict(DEFAULT_TRANSCRIPTION),
                "noise_reduction": None,
                "turn_detection": default_turn_detection("server_vad"),
            }
        },
        "include": None,
    }


def check_transcription_session(data: Any) -> dict[str, Any]:
    """Validate a transcription session object from a client (its wire form); raise ProtocolError with the API's
    codes and the field's path."""
    if not isinstance(data, dict):
        raise ProtocolError("The session must be a JSON object.", "invalid_type", "session")
    if "type" not in data:
        raise ProtocolError("Missing required parameter: 'session.type'.", "missing_required_parameter", "session.type")
    try:
        return TranscriptionSessionConfig.model_validate(data).to_wire()
    except ValidationError as exc:
        code, message, param = api_error(exc.errors(include_url=False)[0], data, "session")
        raise ProtocolError(message, code, param) from None


def changes_type(current: dict[str, Any], update: Any) -> bool:
    """`update` names a session type other than the current session's."""
    return isinstance(update, dict) and "type" in update and update["type"] != current.get("type")


def type_change_refused(current: dict[str, Any], update: dict[str, Any]) -> ProtocolError:
    """A session keeps its type: a realtime session does not become a transcription session, nor the reverse."""
    return ProtocolError(
        f"Invalid value for 'session.type': this is a {current.get('type')} session, and a session's type cannot be "
        f"changed by session.update (got {update['type']!r}); open a new session of that type.",
        "invalid_value",
        "session.type",
    )


def apply_transcription_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """Merge a `session.update` (or a creation request) into the current transcription session; the current one
    is untouched on error."""
    if changes_type(current, update):
        raise type_change_refused(current, update)
    patch = check_transcription_session(update)
    td = patch.get("audio", {}).get("input", {}).get("turn_detection", "unset")
    if isinstance(td, dict):  # a new turn_detection object is completed with that type's defaults
        patch["audio"]["input"]["turn_detection"] = {**default_turn_detection(td["type"]), **td}
    merged = deep_merge(current, patch, replace=("turn_detection", "format"))
    check_transcription_session({k: v for k, v in merged.items() if k not in ("object", "id", "expires_at")})
    return merged
