"""Wire events (pydantic models, closed unions with fallbacks) and the ordered dispatcher."""

from .dispatcher import Dispatcher
from .models import (
    ClientEvent, ConversationItemCreate, Item, MalformedEvent, ResponseCancel, ResponseCreate, SessionUpdate,
    UnknownEvent, parse_client_event, parse_server_event,
)

__all__ = [
    "ClientEvent", "ConversationItemCreate", "Dispatcher", "Item", "MalformedEvent", "ResponseCancel",
    "ResponseCreate", "SessionUpdate", "UnknownEvent", "parse_client_event", "parse_server_event",
]
