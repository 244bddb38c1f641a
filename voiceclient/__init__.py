"""voiceclient: a WebRTC voice client for OpenAI's Realtime API, with an embedded Realtime-compatible server.

    from voiceclient import VoiceCall, SessionConfig, ClientSettings, WavSource, tool

The embedded server (`RealtimeServer`) is imported on first use, so a client-only program never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voiceclient.audio.sources import BufferSource, WavSource, load_audio
from voiceclient.client.call import CallState, EventStream, VoiceCall
from voiceclient.client.calls_api import CallAnswer, CallsAPI
from voiceclient.client.settings import ClientSettings, build_session
from voiceclient.errors import (
    APIConnectionError, APIError, APITimeoutError, AuthenticationError, CallError, ConfigError,
    ConnectionLostError, DeviceError, InvalidAnswerError, InvalidOfferError, InvalidSessionError, NotFoundError,
    RateLimitError, ServerError, SessionNotConfirmedError, SessionUpdateError, ToolDefinitionError,
    VoiceClientError,
)
from voiceclient.protocol.events import Item, MalformedEvent, UnknownEvent, parse_server_event
from voiceclient.protocol.session import SessionConfig
from voiceclient.tools import ApprovalDecision, ApprovalRequest, Tool, ToolContext, tool

if TYPE_CHECKING:
    from voiceclient.server import RealtimeServer

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError", "APIError", "APITimeoutError", "ApprovalDecision", "ApprovalRequest",
    "AuthenticationError", "BufferSource", "CallAnswer", "CallError", "CallState", "CallsAPI", "ClientSettings",
    "ConfigError", "ConnectionLostError", "DeviceError", "EventStream", "InvalidAnswerError",
    "InvalidOfferError", "InvalidSessionError", "Item", "MalformedEvent", "NotFoundError", "RateLimitError",
    "RealtimeServer", "ServerError", "SessionConfig", "SessionNotConfirmedError", "SessionUpdateError", "Tool",
    "ToolContext", "ToolDefinitionError", "UnknownEvent", "VoiceCall", "VoiceClientError", "WavSource",
    "__version__", "build_session", "load_audio", "parse_server_event", "tool",
]


def __getattr__(name: str) -> Any:
    if name == "RealtimeServer":
        from voiceclient.server import RealtimeServer

        return RealtimeServer
    raise AttributeError(f"module 'voiceclient' has no attribute {name!r}")
