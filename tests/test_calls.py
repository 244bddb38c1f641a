"""The client's HTTP side against a scripted aiohttp server on 127.0.0.1 (real HTTP, any status we want)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from voiceclient import ClientSettings, SessionConfig
from voiceclient.client.calls_api import CallsAPI, call_id_from_location
from voiceclient.client.retry import RetryPolicy
from voiceclient.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InvalidAnswerError,
    InvalidOfferError,
    InvalidSessionError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

pytestmark = pytest.mark.timeout(20)
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


class Scripted:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: web.Response | None = None
        self.replies: list[web.Response] = []  # answered first, one per request, before `reply`
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        record: dict[str, Any] = {"path": request.path, "headers": dict(request.headers), "parts": {}}
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                record["parts"][part.name] = (part.headers.get("Content-Type"), (await part.read()).decode())
        else:
            record["body"] = await request.text()
        self.requests.append(record)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.replies:
            return self.replies.pop(0)
        assert self.reply is not None
        return self.reply


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    s = Scripted()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield s, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


def envelope(
    status: int, message: str, code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
        status=status,
        headers=headers,
    )


async def test_create_call_sends_spec_multipart_and_reads_location(scripted, caplog) -> None:
    s, base = scripted
    s.reply = web.Response(
        status=201,
        text="v=0\r\nanswer",
        content_type="application/sdp",
        headers={"Location": "/v1/realtime/calls/rtc_abc123"},
    )
    caplog.set_level(logging.DEBUG)
    session = SessionConfig.model_validate({"type": "realtime", "instructions": "hi"})
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-secret-key")) as api:
        answer = await api.create_call(SDP, session)
    assert answer.call_id == "rtc_abc123" and answer.sdp.startswith("v=0")
    req = s.requests[0]
    assert req["path"] == "/v1/realtime/calls"
    assert req["headers"]["Authorization"] == "Bearer sk-secret-key"
    assert req["headers"]["Accept"] == "application/sdp"
    assert not any(h.lower() == "openai-beta" for h in req["headers"])
    assert req["parts"]["sdp"] == ("application/sdp", SDP)  # byte-exact, CRLFs kept
    assert req["parts"]["session"][0] == "application/json"
    assert json.loads(req["parts"]["session"][1]) == {"type": "realtime", "instructions": "hi"}
    assert "sk-secret-key" not in caplog.text


async def test_ephemeral_key_sends_raw_sdp(scripted) -> None:
    s, base = scripted
    s.reply = web.Response(status=201, text="v=0\r\n", headers={"Location": "https://x/v1/realtime/calls/rtc_9?a=1"})
    async with CallsAPI(ClientSettings(base_url=base, api_key="ek_123")) as api:
        answer = await api.create_call(SDP)
    assert answer.call_id == "rtc_9"
    assert s.requests[0]["headers"]["Content-Type"] == "application/sdp" and s.requests[0]["body"] == SDP


@pytest.mark.parametrize(
    "reply, error, check",
    [
        (lambda: envelope(401, "Incorrect API key provided", "invalid_api_key"), AuthenticationError, None),
        (
            lambda: envelope(429, "Rate limit reached", "rate_limit_exceeded", headers={"retry-after": "7"}),
            RateLimitError,
            lambda e: e.retry_after == 7.0 and e.transient,
        ),
        (lambda: envelope(400, "Invalid SDP offer.", "invalid_offer"), InvalidOfferError, None),
        (
            lambda: envelope(
                400, "Missing required parameter: 'session.type'.", "missing_required_parameter", "session.type"
            ),
            InvalidSessionError,
            lambda e: e.param == "session.type",
        ),
        (lambda: envelope(404, "not found"), NotFoundError, None),
        (
            lambda: web.Response(status=502, text="<html>bad gateway</html>"),
            ServerError,
            lambda e: e.status == 502 and "bad gateway" in e.message,
        ),
        (
            lambda: web.Response(status=201, text='{"error": "sneaky"}'),
            InvalidAnswerError,
            lambda e: "not an SDP" in str(e) and e.exit_code == 4,
        ),
    ],
)
async def test_error_statuses_map_to_typed_errors(scripted, reply, error, check) -> None:
    s, base = scripted
    s.reply = reply()
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x", max_retries=0)) as api:
        with pytest.raises(error) as info:
            await api.create_call(SDP)
    assert check is None or check(info.value)
    assert "\n" not in str(info.value) and len(s.requests) == 1


async def test_timeout_and_refused_connection() -> None:
    async with CallsAPI(ClientSettings(base_url="http://127.0.0.1:9/v1", api_key="sk-x"), retry=FAST) as api:
        with pytest.raises(APIConnectionError, match="after 3 attempts"):
            await api.create_call(SDP)


FAST = RetryPolicy(max_retries=2, initial_delay=0.01)


async def test_429_is_retried_honouring_retry_after_then_succeeds(scripted) -> None:
    s, base = scripted
    s.replies = [
        envelope(429, "Rate limit reached", "rate_limit_exceeded", headers={"retry-after": "0.2"}),
        envelope(503, "Overloaded", "server_overloaded", headers={"retry-after-ms": "150"}),
    ]
    s.reply = web.Response(status=201, text="v=0\r\n", headers={"Location": "/v1/realtime/calls/rtc_ok"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x")) as api:
        answer = await api.create_call(SDP)
    assert answer.call_id == "rtc_ok" and len(s.requests) == 3
    assert loop.time() - started >= 0.35  # it waited what the server asked for, twice (a lower bound only)
    assert s.requests[0]["parts"] == s.requests[2]["parts"]  # the same offer each time


@pytest.mark.parametrize(
    "reply, times, error, requests",
    [
        (lambda: envelope(503, "Overloaded"), 3, ServerError, 3),
        (lambda: envelope(408, "Timeout"), 3, APIError, 3),
        (lambda: envelope(409, "Conflict"), 3, APIError, 3),
        (lambda: envelope(400, "Bad offer", "invalid_offer"), 1, InvalidOfferError, 1),  # a client error: no retry
        (lambda: envelope(401, "Bad key", "invalid_api_key"), 1, AuthenticationError, 1),
        (lambda: envelope(500, "No", headers={"x-should-retry": "false"}), 1, ServerError, 1),  # the server says no
        (lambda: envelope(400, "Try again", headers={"x-should-retry": "true"}), 3, APIError, 3),
    ],
)
async def test_what_is_retried_and_the_one_line_at_the_end(scripted, reply, times, error, requests) -> None:
    s, base = scripted
    s.replies = [reply() for _ in range(times)]  # a response object is sent once
    s.reply = web.Response(status=201, text="v=0\r\n")
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x"), retry=FAST) as api:
        with pytest.raises(error) as info:
            await api.create_call(SDP)
    assert len(s.requests) == requests and "\n" not in str(info.value)
    assert str(info.value).endswith(f"after {requests} attempts") == (requests > 1)


@pytest.mark.parametrize(
    "headers, retries_done, expected",
    [
        ({"retry-after": "7"}, 0, 7.0),
        ({"retry-after-ms": "250"}, 1, 0.25),
        ({"retry-after": "61"}, 0, 0.5),
        ({"retry-after": "0"}, 2, 2.0),
        ({}, 3, 4.0),
        ({}, 6, 8.0),
        ({"retry-after": "soon"}, 1, 1.0),
    ],
)
def test_retry_delays_follow_the_sdk(headers: dict[str, str], retries_done: int, expected: float) -> None:
    policy = RetryPolicy(random=lambda: 0.0)  # no jitter
    assert policy.delay(retries_done, headers) == pytest.approx(expected)
    assert 0.75 * expected <= RetryPolicy(random=lambda: 1.0).delay(retries_done, headers) <= expected


def test_retry_after_as_an_http_date() -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 < RetryPolicy().delay(0, {"retry-after": when}) <= 5.0


async def test_slow_server_times_out(scripted) -> None:
    s, base = scripted
    s.reply, s.delay = web.Response(status=201, text="v=0"), 2.0
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x", http_timeout=0.3, max_retries=0)) as api:
        with pytest.raises(APITimeoutError) as info:
            await api.create_call(SDP)
    assert isinstance(info.value, TimeoutError)


async def test_hangup_posts_to_the_call(scripted) -> None:
    s, base = scripted
    s.reply = web.Response(status=200)
    async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x")) as api:
        await api.hangup("rtc_1")
    assert s.requests[0]["path"] == "/v1/realtime/calls/rtc_1/hangup"


@pytest.mark.parametrize(
    "location, call_id",
    [
        ("/v1/realtime/calls/rtc_u1_9c65", "rtc_u1_9c65"),
        ("https://api.openai.com/v1/realtime/calls/rtc_4?x=1", "rtc_4"),
        ("/v1/realtime/calls/rtc_5/", "rtc_5"),
        ("rtc_6", "rtc_6"),
    ],
)
def test_call_id_from_location(location: str, call_id: str) -> None:
    assert call_id_from_location(location) == call_id
