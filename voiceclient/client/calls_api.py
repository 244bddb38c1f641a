"""The HTTP side of a Realtime call: create call (SDP offer -> answer), hang up, ephemeral client secrets.

Errors come back as the `{"error": {message, type, param, code}}` envelope and are raised as typed errors; an
error body is never handed to the peer connection. The API key is sent only in the Authorization header and
never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from voiceclient.client.http import client_for, httpx
from voiceclient.client.retry import RetryPolicy, retry_after
from voiceclient.client.settings import ClientSettings, base_url_hint
from voiceclient.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConfigError,
    InvalidAnswerError,
    InvalidOfferError,
    InvalidSessionError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from voiceclient.protocol.session import AnySession

log = logging.getLogger(__name__)
# What no retry can mend: the request cannot even be written (a URL httpx cannot send to, a header it refuses).
NOT_TRANSIENT = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)


@dataclass(frozen=True)
class CallAnswer:
    """What `POST /v1/realtime/calls` gave back: the SDP answer, the call's id, and the `Location` it came from."""

    sdp: str
    call_id: str
    location: str


def call_id_from_location(location: str) -> str:
    """`/v1/realtime/calls/rtc_x?foo` or `https://host/v1/realtime/calls/rtc_x` -> `rtc_x`."""
    path = location.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1]


def error_from_response(resp: httpx.Response) -> APIError:
    """Map an HTTP error response (envelope or not) to the matching error class."""
    status = resp.status_code
    err: dict[str, Any] = {}
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    message = str(err.get("message") or resp.text.strip()[:200] or resp.reason_phrase or "error")
    kw: dict[str, Any] = {"status": status, "type": err.get("type"), "code": err.get("code"), "param": err.get("param")}
    if status in (401, 403):
        return AuthenticationError(message, **kw)
    if status == 429:
        return RateLimitError(message, retry_after=retry_after(resp.headers), **kw)
    if status == 404:
        return NotFoundError(message, **kw)
    if status >= 500:
        return ServerError(message, **kw)
    if kw["code"] == "invalid_offer":
        return InvalidOfferError(message, **kw)
    if status in (400, 422) and (
        str(kw["param"] or "").startswith("session")
        or kw["code"] in ("missing_required_parameter", "invalid_type", "invalid_value", "unknown_parameter")
    ):
        return InvalidSessionError(message, **kw)
    return APIError(message, **kw)


class CallsAPI:
    """`async with CallsAPI(settings) as api: answer = await api.create_call(sdp, session)`."""

    def __init__(
        self, settings: ClientSettings, client: httpx.AsyncClient | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_retries=settings.max_retries)
        self._own = client is None
        self._client = client or client_for(settings.base_url, settings.http_timeout)

    async def __aenter__(self) -> "CallsAPI":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._own:
            await self._client.aclose()

    def _url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def _headers(self, accept: str) -> dict[str, str]:
        return {"Accept": accept, **self.settings.request_headers()}

    async def _post(self, path: str, *, retry: bool = True, **kw: Any) -> httpx.Response:
        """POST with the SDK's retries (one attempt if not `retry`); returns the last response (the caller maps an
        error status)."""
        url = self._url(path)
        attempts = self.retry.max_retries + 1 if retry else 1
        for attempt in range(1, attempts + 1):
            failure: APIConnectionError | None = None
            resp: httpx.Response | None = None
            try:
                resp = await self._client.post(url, **kw)
            except httpx.LocalProtocolError:  # its words quote the header, which may be the key: not shown
                raise ConfigError(
                    f"POST {url}: a request header is not valid HTTP (a line break in the API key or a header?)"
                ) from None
            except NOT_TRANSIENT as exc:
                raise ConfigError(f"POST {url}: {exc}") from None
            except httpx.TimeoutException:
                failure = APITimeoutError(f"POST {url}: no answer within {self.settings.http_timeout:g} s")
            except httpx.HTTPError as exc:
                failure = APIConnectionError(f"POST {url}: {type(exc).__name__}: {exc}")
            if resp is not None:
                log.debug("POST %s -> %s", url, resp.status_code)
                if resp.status_code < 300 or not self.retry.should_retry(resp.status_code, resp.headers):
                    return resp
            if attempt == attempts:
                if failure is not None:
                    raise failure.after(attempts) from None
                assert resp is not None
                return resp
            wait = self.retry.delay(attempt - 1, resp.headers if resp is not None else None)
            why = str(failure) if failure is not None else f"HTTP {resp.status_code if resp else '?'}"
            log.warning("POST %s: %s; retrying in %.1f s (attempt %d of %d)", path, why, wait, attempt + 1, attempts)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def create_call(self, sdp: str, session: AnySession | None = None) -> CallAnswer:
        """POST /realtime/calls. Multipart (`sdp` application/sdp, `session` application/json), or raw
        `application/sdp` when the key is an ephemeral `ek_` key (its session is bound to the key)."""
        headers = self._headers("application/sdp")
        key = self.settings.api_key or ""
        if key.startswith("ek_"):
            headers["Content-Type"] = "application/sdp"
            resp = await self._post("/realtime/calls", content=sdp.encode(), headers=headers)
        else:
            files: dict[str, Any] = {"sdp": (None, sdp.encode(), "application/sdp")}
            if session is not None:
                files["session"] = (None, json.dumps(session.to_wire()).encode(), "application/json")
            resp = await self._post("/realtime/calls", files=files, headers=headers)
        if resp.status_code not in (200, 201):
            error = error_from_response(resp)
            if isinstance(error, NotFoundError):  # no such endpoint here: say where we looked, and the usual cause
                error.message = f"POST {self._url('/realtime/calls')}: {error.message}"
                error.hint = base_url_hint(self.settings.base_url)
            raise error.after(
                self.retry.max_retries + 1 if self.retry.should_retry(resp.status_code, resp.headers) else 1
            )
        answer = resp.text
        if not answer.lstrip().startswith("v="):
            raise InvalidAnswerError(
                f"the server answered HTTP {resp.status_code} but the body is not an SDP answer: {answer[:80]!r}"
            )
        location = resp.headers.get("location", "")
        call_id = call_id_from_location(location) if location else ""
        if not call_id:
            log.warning("create call: no Location header; hangup will not be possible")
        return CallAnswer(sdp=answer, call_id=call_id, location=location)

    async def create_live_session(self, sdp: str, session: dict[str, Any]) -> CallAnswer:
        """GPT-Live's `POST /live/sessions`: JSON `{session, transport: {type: "webrtc", sdp}}` -> `201` JSON
        `{session: {id}, transport: {sdp}}` (the session's id is the call's)."""
        body = {"session": session, "transport": {"type": "webrtc", "sdp": sdp}}
        resp = await self._post("/live/sessions", json=body, headers=self._headers("application/json"))
        if resp.status_code not in (200, 201):
            error = error_from_response(resp)
            if isinstance(error, NotFoundError):
                error.message = f"POST {self._url('/live/sessions')}: {error.message}"
                error.hint = base_url_hint(self.settings.base_url)
            raise error.after(
                self.retry.max_retries + 1 if self.retry.should_retry(resp.status_code, resp.headers) else 1
            )
        try:
            data = resp.json()
            answer, session_id = data["transport"]["sdp"], data["session"]["id"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise InvalidAnswerError(
                f"the server answered HTTP {resp.status_code} but not with {{session: {{id}}, transport: {{sdp}}}}: "
                f"{resp.text[:80]!r}"
            ) from None
        if not isinstance(answer, str) or not answer.lstrip().startswith("v="):
            raise InvalidAnswerError(f"the server's transport.sdp is not an SDP answer: {str(answer)[:80]!r}")
        return CallAnswer(sdp=answer, call_id=str(session_id), location="")

    async def hangup(self, call_id: str, *, retry: bool = True) -> None:
        """`POST /realtime/calls/{call_id}/hangup`: end a call from the HTTP side (`retry=False`: one attempt, as a
        call closing does: closing the peer connection ends the call too, and a server that is gone is not
        waited for)."""
        resp = await self._post(f"/realtime/calls/{call_id}/hangup", retry=retry, headers=self._headers("*/*"))
        if resp.status_code >= 300:
            raise error_from_response(resp)

    async def create_client_secret(
        self, session: AnySession | None = None, expires_seconds: int | None = None
    ) -> dict[str, Any]:
        """POST /realtime/client_secrets -> `{"value": "ek_…", "expires_at": …, "session": {…}}`."""
        body: dict[str, Any] = {}
        if session is not None:
            body["session"] = session.to_wire()
        if expires_seconds is not None:
            body["expires_after"] = {"anchor": "created_at", "seconds": expires_seconds}
        resp = await self._post("/realtime/client_secrets", json=body, headers=self._headers("application/json"))
        if resp.status_code >= 300:
            raise error_from_response(resp)
        secret: dict[str, Any] = resp.json()
        return secret
