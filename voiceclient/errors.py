"""The one exception tree of voiceclient.

::

    VoiceClientError                      (base; .transient says whether a retry may help)
    ├── ConfigError(ValueError)           a bad session field, flag or file          exit 2
    │   ├── ToolDefinitionError           a @tool that cannot be described to the model
    │   └── DeviceError                   no PortAudio, no such microphone or speaker
    ├── APIError                          the HTTP API answered with an error        exit 5
    │   ├── AuthenticationError           401/403: bad, expired or missing key        exit 3
    │   ├── RateLimitError                429: quota or rate limit (.retry_after)     transient
    │   ├── InvalidOfferError(ValueError) 400 invalid_offer: the SDP was refused
    │   ├── InvalidSessionError(ValueError) 400 on the session object (.param names the field)
    │   ├── NotFoundError                 404: unknown call id, or a base URL without /v1
    │   └── ServerError                   5xx                                         transient
    ├── APIConnectionError(ConnectionError) the API could not be reached              exit 4, transient
    │   ├── APITimeoutError(TimeoutError) it did not answer in time                   exit 4, transient
    │   └── InvalidAnswerError            a 2xx whose body is no usable SDP answer    exit 4
    └── CallError                         the live call went wrong                    exit 5
        ├── ConnectionLostError(ConnectionError) ICE/DTLS failed or the channel closed  exit 4, transient
        ├── SessionUpdateError            the server refused our session.update       exit 2
        └── SessionNotConfirmedError      no session.updated: the session may not apply exit 5
"""

from __future__ import annotations

from typing import Self


class VoiceClientError(Exception):
    """Base of every error voiceclient raises on purpose."""

    transient: bool = False
    exit_code: int = 1
    attempts: int = 1

    def after(self, attempts: int) -> Self:
        """The same error, noting that it is the last of `attempts` tries (returns self)."""
        self.attempts = attempts
        return self

    def __str__(self) -> str:
        text = super().__str__()
        return text + (f" after {self.attempts} attempts" if self.attempts > 1 else "")


class ConfigError(VoiceClientError, ValueError):
    """A bad value in a flag, a config or session file, a scenario or a tool definition (exit code 2)."""

    exit_code = 2


class ToolDefinitionError(ConfigError):
    """A function that cannot be a tool (arguments with no JSON Schema, a timeout not above 0)."""


class DeviceError(ConfigError):
    """A sound device that cannot be found or opened, or sounddevice missing."""


class APIError(VoiceClientError):
    """An error envelope `{"error": {message, type, param, code}}` from the HTTP API."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.hint = hint  # what to do about it, said after the server's words (e.g. a base URL without /v1)

    def __str__(self) -> str:
        bits = [
            f"HTTP {self.status}" if self.status else None,
            self.code,
            f"param {self.param}" if self.param else None,
        ]
        head = ", ".join(b for b in bits if b)
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        text = f"{self.message} ({head}){tries}" if head else self.message + tries
        return f"{text}; {self.hint}" if self.hint else text


class AuthenticationError(APIError):
    """The API key was refused (HTTP 401 or 403; exit code 3)."""

    exit_code = 3


class RateLimitError(APIError):
    """HTTP 429; `retry_after` is the seconds the server asked to wait, when it said."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class InvalidOfferError(APIError, ValueError):
    """The server refused the SDP offer (its error code `invalid_offer`)."""


class InvalidSessionError(APIError, ValueError):
    """The server refused the session sent with the call (HTTP 400 about a session field; exit code 2)."""

    exit_code = 2


class NotFoundError(APIError):
    """HTTP 404: a wrong base URL, or a call that no longer exists."""


class ServerError(APIError):
    """HTTP 5xx: the service failed; transient, so retried."""

    transient = True


class APIConnectionError(VoiceClientError, ConnectionError):
    """The HTTP request did not get an answer (refused, reset, DNS); transient (exit code 4)."""

    transient = True
    exit_code = 4


class APITimeoutError(APIConnectionError, TimeoutError):
    """The HTTP request timed out."""


class InvalidAnswerError(APIConnectionError):
    """The create-call succeeded but its body is not an SDP answer our peer can take: nothing can connect."""

    transient = False


class CallError(VoiceClientError):
    """A call that connected and then failed (exit code 5)."""

    exit_code = 5


class ConnectionLostError(CallError, ConnectionError):
    """The connection carrying the call was lost and could not be replaced, or none could be made (`auto`: neither
    WebRTC nor the WebSocket; the message gives both reasons) (exit code 4)."""

    transient = True
    exit_code = 4


class SessionUpdateError(CallError):
    """The server refused a `session.update` (its `error` event), with the server's words."""

    exit_code = 2


class SessionNotConfirmedError(CallError):
    """The server never answered our `session.update`: the call would run with a session nobody confirmed."""
