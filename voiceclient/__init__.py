"""voiceclient: a WebRTC voice client for OpenAI's Realtime API, with an embedded Realtime-compatible server.

    from voiceclient import VoiceCall, SessionConfig, ClientSettings, WavSource, tool
"""

from .audio.sources import BufferSource, PlayoutQueue, WavSource, load_audio
from .calls import CallAnswer, CallsAPI
from .config import ClientSettings, SessionConfig, build_session
from .errors import (
    APIConnectionError, APIError, APITimeoutError, AuthenticationError, CallError, ConfigError,
    ConnectionLostError, InvalidOfferError, InvalidSessionError, NotFoundError, RateLimitError, ServerError,
    SessionUpdateError, ToolDefinitionError, VoiceClientError,
)
from .events.models import Item, MalformedEvent, UnknownEvent, parse_server_event
from .session import CallState, VoiceCall
from .tools import Tool, tool

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError", "APIError", "APITimeoutError", "AuthenticationError", "BufferSource", "CallAnswer",
    "CallError", "CallState", "CallsAPI", "ClientSettings", "ConfigError", "ConnectionLostError",
    "InvalidOfferError", "InvalidSessionError", "Item", "MalformedEvent", "NotFoundError", "PlayoutQueue",
    "RateLimitError", "ServerError", "SessionConfig", "SessionUpdateError", "Tool", "ToolDefinitionError",
    "UnknownEvent", "VoiceCall", "VoiceClientError", "WavSource", "__version__", "build_session", "load_audio",
    "parse_server_event", "tool",
]
