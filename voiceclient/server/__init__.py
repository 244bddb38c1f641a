"""The embedded Realtime-compatible server (`voiceclient serve`): HTTP routes, per-call state, VAD, responders."""

from voiceclient.server.app import RealtimeServer

__all__ = ["RealtimeServer"]
