"""voiceclient's wire data as the Agents SDK's public types, and back: a server event as the SDK's model events
(`model_events`), conversation items as the SDK's history items (`agents.realtime.items`), a response's usage as
its usage event, the SDK's user input as a wire item.

The conversions follow the SDK's WebSocket model (the same history comes out over either transport: GA content
types `output_text`/`output_audio` named `text`/`audio`, as the SDK keeps them), written here from the public
types so that no SDK internal is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.realtime.items import RealtimeMessageItem, RealtimeToolCallItem
from agents.realtime.model_events import (
    RealtimeModelAudioDoneEvent,
    RealtimeModelCachedTokensDetails,
    RealtimeModelErrorEvent,
    RealtimeModelEvent,
    RealtimeModelInputAudioTimeoutTriggeredEvent,
    RealtimeModelInputAudioTranscriptionCompletedEvent,
    RealtimeModelInputTokensDetails,
    RealtimeModelItemDeletedEvent,
    RealtimeModelItemUpdatedEvent,
    RealtimeModelOutputTextDeltaEvent,
    RealtimeModelOutputTokensDetails,
    RealtimeModelToolCallEvent,
    RealtimeModelTranscriptDeltaEvent,
    RealtimeModelTurnEndedEvent,
    RealtimeModelTurnStartedEvent,
    RealtimeModelUsageEvent,
)
from agents.realtime.model_inputs import RealtimeModelUserInput
from agents.usage import Usage
from pydantic import TypeAdapter

from voiceclient.protocol import events as ev

_MESSAGE_ITEM: TypeAdapter[RealtimeMessageItem] = TypeAdapter(RealtimeMessageItem)
_STATUSES = ("in_progress", "completed", "incomplete")


def model_events(event: ev.KnownServerEvent, data: Mapping[str, Any]) -> list[RealtimeModelEvent]:
    """A server event as the SDK's model events, as the SDK's WebSocket model maps it (`data`: the event as sent).
    What the model keeps of an event for itself (the response in progress, the session) is the model's."""
    if isinstance(event, (ev.ResponseOutputItemAdded, ev.ResponseOutputItemDone)):
        item = event.item
        if item.type == "message":
            done = isinstance(event, ev.ResponseOutputItemDone)
            return [RealtimeModelItemUpdatedEvent(item=output_message(data["item"], done))]
        if item.type == "function_call" and item.status == "completed":
            return [
                RealtimeModelItemUpdatedEvent(item=tool_call(item)),
                RealtimeModelToolCallEvent(
                    call_id=item.call_id or "", name=item.name or "", arguments=item.arguments or "", id=item.id or ""
                ),
            ]
        return []
    if isinstance(event, ev.ResponseOutputAudioDone):
        return [RealtimeModelAudioDoneEvent(item_id=event.item_id, content_index=event.content_index)]
    if isinstance(event, ev.ResponseCreated):
        return [RealtimeModelTurnStartedEvent(response_id=event.response.id)]
    if isinstance(event, ev.ResponseDone):
        usage = [usage_event(event.response.usage)] if event.response.usage is not None else []
        return [*usage, RealtimeModelTurnEndedEvent(response_id=event.response.id)]
    if isinstance(event, ev.Error):
        return [RealtimeModelErrorEvent(error=event.error)]
    if isinstance(event, ev.ConversationItemDeleted):
        return [RealtimeModelItemDeletedEvent(item_id=event.item_id)]
    if isinstance(event, (ev.ConversationItemAdded, ev.ConversationItemCreated, ev.ConversationItemRetrieved)):
        if event.item.type != "message":
            return []
        previous = event.previous_item_id if isinstance(event, ev.ConversationItemCreated) else None
        return [RealtimeModelItemUpdatedEvent(item=conversation_message(data["item"], previous))]
    if isinstance(event, ev.InputTranscriptionCompleted):
        return [RealtimeModelInputAudioTranscriptionCompletedEvent(item_id=event.item_id, transcript=event.transcript)]
    if isinstance(event, ev.ResponseOutputAudioTranscriptDelta):
        return [
            RealtimeModelTranscriptDeltaEvent(item_id=event.item_id, delta=event.delta, response_id=event.response_id)
        ]
    if isinstance(event, ev.ResponseOutputTextDelta):
        return [
            RealtimeModelOutputTextDeltaEvent(item_id=event.item_id, delta=event.delta, response_id=event.response_id)
        ]
    if isinstance(event, ev.InputAudioBufferTimeoutTriggered):
        return [
            RealtimeModelInputAudioTimeoutTriggeredEvent(
                item_id=event.item_id, audio_start_ms=event.audio_start_ms, audio_end_ms=event.audio_end_ms
            )
        ]
    return []


def conversation_message(item: Mapping[str, Any], previous_item_id: str | None) -> RealtimeMessageItem:
    """A message item of `conversation.item.added` / `.created` / `.retrieved` as the SDK's history item: every
    content part kept, `output_text` and `output_audio` named `text` and `audio`."""
    content = []
    for part in item.get("content") or []:
        if isinstance(part, Mapping):
            kind = {"output_text": "text", "output_audio": "audio"}.get(part.get("type", ""), part.get("type"))
            content.append({**part, "type": kind})
    return _MESSAGE_ITEM.validate_python(
        {
            "item_id": item.get("id") or "",
            "previous_item_id": previous_item_id,
            "type": "message",
            "role": item.get("role"),
            "content": content,
            "status": item.get("status") or "in_progress",
        }
    )


def output_message(item: Mapping[str, Any], done: bool) -> RealtimeMessageItem:
    """A message item of `response.output_item.added` / `.done`: its audio and text parts only; the status the
    item has, else from the event (`done`: completed)."""
    content: list[dict[str, Any]] = []
    for part in item.get("content") or []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") in ("audio", "output_audio"):
            content.append({"type": "audio", "audio": part.get("audio"), "transcript": part.get("transcript")})
        elif part.get("type") in ("text", "output_text"):
            content.append({"type": "text", "text": part.get("text")})
    status = item.get("status")
    if status not in _STATUSES:
        status = "completed" if done else "in_progress"
    return _MESSAGE_ITEM.validate_python(
        {
            "item_id": item.get("id") or "",
            "type": "message",
            "role": item.get("role") or "assistant",
            "content": content,
            "status": status,
        }
    )


def tool_call(item: ev.Item) -> RealtimeToolCallItem:
    """A completed function call as the SDK's history item, still without its output (`in_progress` until the
    SDK has run the tool)."""
    return RealtimeToolCallItem(
        item_id=item.id or "",
        previous_item_id=None,
        call_id=item.call_id,
        type="function_call",
        status="in_progress",
        arguments=item.arguments or "",
        name=item.name or "",
        output=None,
    )


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) else None


def usage_event(usage: Mapping[str, Any]) -> RealtimeModelUsageEvent:
    """A `response.done`'s `usage` as the SDK's usage event (one request)."""
    input_tokens = _int(usage, "input_tokens") or 0
    output_tokens = _int(usage, "output_tokens") or 0
    total = _int(usage, "total_tokens")
    aggregate = Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total if total is not None else input_tokens + output_tokens,
    )
    given_in = usage.get("input_token_details")
    given_out = usage.get("output_token_details")
    input_details = None
    if isinstance(given_in, Mapping):
        aggregate.input_tokens_details.cached_tokens = _int(given_in, "cached_tokens") or 0
        cached = given_in.get("cached_tokens_details")
        input_details = RealtimeModelInputTokensDetails(
            text_tokens=_int(given_in, "text_tokens"),
            audio_tokens=_int(given_in, "audio_tokens"),
            image_tokens=_int(given_in, "image_tokens"),
            cached_tokens=_int(given_in, "cached_tokens"),
            cached_tokens_details=(
                RealtimeModelCachedTokensDetails(
                    text_tokens=_int(cached, "text_tokens"),
                    audio_tokens=_int(cached, "audio_tokens"),
                    image_tokens=_int(cached, "image_tokens"),
                )
                if isinstance(cached, Mapping)
                else None
            ),
        )
    output_details = (
        RealtimeModelOutputTokensDetails(
            text_tokens=_int(given_out, "text_tokens"), audio_tokens=_int(given_out, "audio_tokens")
        )
        if isinstance(given_out, Mapping)
        else None
    )
    return RealtimeModelUsageEvent(
        usage=aggregate, input_tokens_details=input_details, output_tokens_details=output_details
    )


def user_item(user_input: RealtimeModelUserInput) -> ev.Item:
    """The SDK's user input (a string, or a message of `input_text` / `input_image` parts) as a user message item;
    parts of other types, or without their text or URL, are left out, as the SDK leaves them out."""
    if isinstance(user_input, str):
        return ev.Item.user_text(user_input)
    parts: list[ev.ContentPart] = []
    given: list[Any] = list(user_input.get("content", []))
    for part in given:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "input_text" and isinstance(part.get("text"), str):
            parts.append(ev.ContentPart(type="input_text", text=part["text"]))
        elif part.get("type") == "input_image" and isinstance(part.get("image_url"), str) and part["image_url"]:
            image: dict[str, Any] = {"image_url": part["image_url"]}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append(ev.ContentPart(type="input_image", **image))
    return ev.Item(type="message", role="user", content=parts)
