"""The session and response fields of the current `openai` package (issue 32, item 6): every field its session
request type has, our `SessionConfig` accepts (a field the SDK gains later fails here until it is modelled or
listed in `NOT_MODELLED` with its reason); the newest fields are validated with the SDK's types and ranges and
echoed by `serve`; the client reads a content part without `type` as the SDK does.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

import pytest
from openai.types.realtime.realtime_response_create_params import RealtimeResponseCreateParams
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)
from pydantic import BaseModel, ValidationError

from voiceclient.protocol.events import (
    MalformedEvent,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseParams,
    parse_server_event,
)
from voiceclient.protocol.session import SessionConfig, TranscriptionSessionConfig
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

# SDK field paths our models do not spell out, and why (docs/differences.md, "Session fields").
NOT_MODELLED = {
    # `prompt.variables` is a map we take as given: its values (input_text, input_image, input_file objects) are
    # the stored prompt's business, and `serve` has no stored prompts.
    "prompt.variables[": "a map of values taken as given",
}


def _models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in get_args(tp) for m in _models(arg)]


def _literal(tp: Any) -> str | None:
    if get_origin(tp) is Literal:
        return str(get_args(tp)[0])
    return next((v for v in map(_literal, get_args(tp)) if v), None)


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field name of `model`, recursively, as dotted paths; a member of a union of objects is tagged by its
    `type` (`audio.input.turn_detection[semantic_vad].eagerness`), lists and maps are looked through."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        out.add(path)
        members = _models(info.annotation)
        for member in members:
            kind = member.model_fields.get("type")
            tag = (kind and _literal(kind.annotation)) or member.__name__
            out |= field_paths(member, path + (f"[{tag}]" if len(members) > 1 else "") + ".")
    return out


def _unexcused(paths: set[str]) -> list[str]:
    return sorted(p for p in paths if not any(p.startswith(prefix) for prefix in NOT_MODELLED))


def test_session_config_has_every_field_of_the_sdk_session_request() -> None:
    """[SDK] RealtimeSessionCreateRequest, recursively: a field it has and we refuse would be a session the real
    service accepts and ours refuses; one we accept and it lacks, the other way round."""
    sdk, ours = field_paths(RealtimeSessionCreateRequest), field_paths(SessionConfig)
    assert _unexcused(sdk - ours) == [], "fields of the SDK's session that SessionConfig refuses"
    assert sorted(ours - sdk) == [], "fields SessionConfig accepts that the SDK's session does not have"


def test_transcription_session_config_has_the_fields_of_the_sdk_transcription_session_request() -> None:
    """[SDK] RealtimeTranscriptionSessionCreateRequest, recursively, both ways: the client sends it, serve checks it."""
    sdk, ours = field_paths(RealtimeTranscriptionSessionCreateRequest), field_paths(TranscriptionSessionConfig)
    assert _unexcused(sdk - ours) == [], "fields of the SDK's transcription session that ours refuses"
    assert sorted(ours - sdk) == [], "fields ours accepts that the SDK's transcription session does not have"
    assert "audio.input.turn_detection[semantic_vad].eagerness" in ours  # (the walk reaches the leaves)


def test_response_params_have_every_field_of_the_sdk_response_create_params() -> None:
    """[SDK] RealtimeResponseCreateParams: the same names at the top level (the nested objects, items and tools,
    are checked by the server's own rules)."""
    sdk, ours = set(RealtimeResponseCreateParams.model_fields), set(ResponseParams.model_fields)
    assert sorted(sdk ^ ours) == []


def test_the_new_fields_are_checked_with_the_sdk_types() -> None:
    """[SDK] AudioTranscription.delay (minimal..xhigh), keywords and languages (lists of strings); NoiseReduction
    .strength (a number; 0 to 1 is our stricter range); Mcp.tunnel_id (enough without server_url), defer_loading,
    allowed_callers ("direct", "programmatic"); RealtimeReasoning.effort."""
    SessionConfig.model_validate(
        {"type": "realtime", "tools": [{"type": "mcp", "server_label": "t", "tunnel_id": "tun_1"}]}
    )
    bad: list[dict[str, Any]] = [
        {"audio": {"input": {"transcription": {"delay": "slow"}}}},
        {"audio": {"input": {"transcription": {"keywords": "one"}}}},
        {"audio": {"input": {"transcription": {"languages": [1]}}}},
        {"audio": {"input": {"noise_reduction": {"type": "near_field", "strength": 1.5}}}},
        {"audio": {"input": {"noise_reduction": {"type": "near_field", "strength": -0.1}}}},
        {"tools": [{"type": "mcp", "server_label": "t", "tunnel_id": "x", "allowed_callers": ["someone"]}]},
        {"tools": [{"type": "mcp", "server_label": "t", "tunnel_id": "x", "defer_loading": [True]}]},
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            SessionConfig.model_validate({"type": "realtime", **fields})
    for params in ({"reasoning": {"effort": "huge"}}, {"parallel_tool_calls": [False]}, {"reasoning": {"x": 1}}):
        with pytest.raises(ValidationError):
            ResponseParams.model_validate(params)


NEW_FIELDS: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "transcription": {
                "model": "gpt-transcribe",
                "keywords": ["voiceclient", "WebRTC"],
                "languages": ["en", "fr"],
                "delay": "low",
            },
            "noise_reduction": {"type": "far_field", "strength": 0.4},
        }
    },
    "tools": [
        {
            "type": "mcp",
            "server_label": "tunnelled",
            "tunnel_id": "tun_123",
            "defer_loading": True,
            "allowed_callers": ["direct", "programmatic"],
        }
    ],
}


async def test_serve_accepts_and_echoes_the_new_session_fields() -> None:
    """[SDK] AudioTranscription (delay, keywords, languages), NoiseReduction.strength, Mcp (tunnel_id,
    defer_loading, allowed_callers): `session.updated` shows them as set."""
    async with MemorySession() as s:
        s.send({"type": "session.update", "session": NEW_FIELDS})
        session = (await s.next_event("session.updated"))["session"]
        transcription = session["audio"]["input"]["transcription"]
        assert transcription == NEW_FIELDS["audio"]["input"]["transcription"]
        assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field", "strength": 0.4}
        assert session["tools"] == NEW_FIELDS["tools"]
        assert not s.sent("error")


async def test_noise_reduction_strength_defaults_to_1_and_is_kept_when_omitted() -> None:
    """[SDK] NoiseReduction.strength: "Defaults to 1 when noise reduction is first enabled. Omitting strength
    from a session update preserves the current strength." Out of range is `invalid_value` on its path."""
    async with MemorySession() as s:

        async def noise(value: Any) -> Any:
            s.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": value}}})
            return (await s.next_event("session.updated"))["session"]["audio"]["input"]["noise_reduction"]

        assert await noise({"noise_reduction": {"type": "near_field"}}) == {"type": "near_field", "strength": 1.0}
        assert (await noise({"noise_reduction": {"type": "near_field", "strength": 0.25}}))["strength"] == 0.25
        assert await noise({"noise_reduction": {"type": "far_field"}}) == {"type": "far_field", "strength": 0.25}
        s.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"noise_reduction": {"type": "far_field", "strength": 2}}},
                },
            }
        )
        error = (await s.next_event("error"))["error"]
        assert error["code"] == "invalid_value"
        assert error["param"] == "session.audio.input.noise_reduction.strength"


async def test_response_create_accepts_reasoning_and_parallel_tool_calls() -> None:
    """[SDK] RealtimeResponseCreateParams.reasoning (RealtimeReasoning) and .parallel_tool_calls (bool): accepted
    and answered; a wrong effort is refused on its path."""
    async with MemorySession() as s:
        s.send(
            {
                "type": "response.create",
                "response": {
                    "output_modalities": ["text"],
                    "instructions": "say hi",
                    "reasoning": {"effort": "low"},
                    "parallel_tool_calls": False,
                },
            }
        )
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        assert not s.sent("error")
        s.send({"type": "response.create", "response": {"reasoning": {"effort": "extreme"}}})
        error = (await s.next_event("error"))["error"]
        assert error["code"] == "invalid_value" and error["param"] == "response.reasoning.effort"


@pytest.mark.parametrize("event_type", ["response.content_part.added", "response.content_part.done"])
def test_the_client_reads_a_content_part_without_type(event_type: str) -> None:
    """[SDK] ResponseContentPartAddedEvent.Part / ResponseContentPartDoneEvent.Part: `type` is optional."""
    wire = {
        "type": event_type,
        "event_id": "event_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "part": {"transcript": "hello"},
    }
    event = parse_server_event(json.dumps(wire))
    assert not isinstance(event, MalformedEvent)
    assert isinstance(event, ResponseContentPartAdded | ResponseContentPartDone)
    assert event.part.type is None and event.part.transcript == "hello"
