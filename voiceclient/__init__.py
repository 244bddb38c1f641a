"""voiceclient: a WebRTC voice client for OpenAI's Realtime API, with an embedded Realtime-compatible server.

    from voiceclient import VoiceCall, SessionConfig, ClientSettings, WavSource, tool

Every public name is imported on first use, so a client-only program never loads the server, and a module of the
package (the pytest plugin, `voiceclient serve`) loads only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceclient.lazy import lazy_names

if TYPE_CHECKING:
    from voiceclient.audio.sources import BufferSource, WavSource, load_audio
    from voiceclient.client.call import CallState, EventStream, VoiceCall
    from voiceclient.client.calls_api import CallAnswer, CallsAPI
    from voiceclient.client.fallback import AutoTransport
    from voiceclient.client.options import Continuity, ReconnectPolicy, Recording
    from voiceclient.client.settings import ClientSettings, build_session, build_transcription_session
    from voiceclient.client.transport import Transport, WebRTCTransport
    from voiceclient.client.websocket import WebSocketTransport
    from voiceclient.errors import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        CallError,
        ConfigError,
        ConnectionLostError,
        DeviceError,
        InvalidAnswerError,
        InvalidOfferError,
        InvalidSessionError,
        NotFoundError,
        RateLimitError,
        ServerError,
        SessionNotConfirmedError,
        SessionUpdateError,
        ToolDefinitionError,
        VoiceClientError,
    )
    from voiceclient.protocol.events import Item, MalformedEvent, UnknownEvent, parse_server_event
    from voiceclient.protocol.session import SessionConfig, TranscriptionSessionConfig
    from voiceclient.server import RealtimeServer
    from voiceclient.tools import ApprovalDecision, ApprovalRequest, Tool, ToolContext, tool

# Where each public name lives. They are imported on first use (PEP 562), so `import voiceclient.x` costs only
# what x needs: the pytest plugin and `voiceclient serve` do not load the client, nor the client the server.
_WHERE = {
    "voiceclient.audio.sources": ["BufferSource", "WavSource", "load_audio"],
    "voiceclient.client.call": ["CallState", "EventStream", "VoiceCall"],
    "voiceclient.client.calls_api": ["CallAnswer", "CallsAPI"],
    "voiceclient.client.fallback": ["AutoTransport"],
    "voiceclient.client.options": ["Continuity", "ReconnectPolicy", "Recording"],
    "voiceclient.client.settings": ["ClientSettings", "build_session", "build_transcription_session"],
    "voiceclient.client.transport": ["Transport", "WebRTCTransport"],
    "voiceclient.client.websocket": ["WebSocketTransport"],
    "voiceclient.errors": [
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "AuthenticationError",
        "CallError",
        "ConfigError",
        "ConnectionLostError",
        "DeviceError",
        "InvalidAnswerError",
        "InvalidOfferError",
        "InvalidSessionError",
        "NotFoundError",
        "RateLimitError",
        "ServerError",
        "SessionNotConfirmedError",
        "SessionUpdateError",
        "ToolDefinitionError",
        "VoiceClientError",
    ],
    "voiceclient.protocol.events": ["Item", "MalformedEvent", "UnknownEvent", "parse_server_event"],
    "voiceclient.protocol.session": ["SessionConfig", "TranscriptionSessionConfig"],
    "voiceclient.server": ["RealtimeServer"],
    "voiceclient.tools": ["ApprovalDecision", "ApprovalRequest", "Tool", "ToolContext", "tool"],
}
__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ApprovalDecision",
    "ApprovalRequest",
    "AuthenticationError",
    "AutoTransport",
    "BufferSource",
    "CallAnswer",
    "CallError",
    "CallState",
    "CallsAPI",
    "ClientSettings",
    "ConfigError",
    "ConnectionLostError",
    "Continuity",
    "DeviceError",
    "EventStream",
    "InvalidAnswerError",
    "InvalidOfferError",
    "InvalidSessionError",
    "Item",
    "MalformedEvent",
    "NotFoundError",
    "RateLimitError",
    "RealtimeServer",
    "ReconnectPolicy",
    "Recording",
    "ServerError",
    "SessionConfig",
    "SessionNotConfirmedError",
    "SessionUpdateError",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "TranscriptionSessionConfig",
    "Transport",
    "UnknownEvent",
    "VoiceCall",
    "VoiceClientError",
    "WavSource",
    "WebRTCTransport",
    "WebSocketTransport",
    "__version__",
    "build_session",
    "build_transcription_session",
    "load_audio",
    "parse_server_event",
    "tool",
]
