"""The one error the embedded server raises for anything a client did wrong (or it failed at): the fields of the
API's error envelope, rendered either as an HTTP body or as an `error` event on the data channel."""

from __future__ import annotations

from typing import Any

from voiceclient.errors import VoiceClientError


class ProtocolError(VoiceClientError):
    def __init__(
        self,
        message: str,
        code: str | None = None,
        param: str | None = None,
        *,
        type: str = "invalid_request_error",
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.type, self.status = message, code, param, type, status
        self.headers = dict(headers or {})  # HTTP headers of the response (Retry-After)
        self.event_id: str | None = None

    def with_event(self, event: object) -> ProtocolError:
        """Name the client event this error answers (its `event_id`, when it has one); returns self."""
        event_id = getattr(event, "event_id", None)
        self.event_id = event_id if isinstance(event_id, str) else None
        return self

    def body(self, *, with_event_id: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message, "param": self.param}
        if with_event_id:
            body["event_id"] = self.event_id
        return body

    def envelope(self) -> dict[str, Any]:
        """The HTTP response body: `{"error": {message, type, param, code}}`."""
        return {"error": self.body()}

    def event(self) -> dict[str, Any]:
        """The `error` server event, naming the client event it answers."""
        return {"type": "error", "error": self.body(with_event_id=True)}
