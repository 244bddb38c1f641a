"""What a user's first mistakes print (issue 29): a base URL without /v1, a malformed one, no API key. Real HTTP
against the embedded server on 127.0.0.1 (no peer connection: the unit lane). The exit codes, as a user sees
them, are in tests/test_cli.py."""

from __future__ import annotations

import logging

import pytest

from voiceclient import ClientSettings, SessionConfig
from voiceclient.app.cli import build_parser, call_setup
from voiceclient.client.calls_api import CallsAPI
from voiceclient.client.settings import base_url_hint
from voiceclient.client.websocket import WebSocketTransport
from voiceclient.errors import AuthenticationError, ConfigError, InvalidOfferError, NotFoundError
from voiceclient.server import RealtimeServer

pytestmark = pytest.mark.timeout(20)
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
MALFORMED = ["htp://127.0.0.1:8000/v1", "127.0.0.1:8000/v1", "http:///v1", "http://[::1/v1"]


class Ignored:
    """`TransportEvents` that drop everything (these transports never open)."""

    def on_server_message(self, message: str | bytes) -> None:
        pass

    def on_received_audio(self, pcm: object, pts: int, at: float) -> None:
        pass

    def on_sent_audio(self, pcm: object, pts: int, at: float) -> None:
        pass

    def on_local_message(self, message: str | bytes) -> None:
        pass

    def on_sent_message(self, message: str) -> None:
        pass


async def test_a_404_from_create_call_names_the_url_and_suggests_v1() -> None:
    async with RealtimeServer(port=0) as server:
        base = server.base_url.removesuffix("/v1")
        async with CallsAPI(ClientSettings(base_url=base, api_key="sk-x")) as api:
            with pytest.raises(NotFoundError) as err:
                await api.create_call(SDP)
    assert str(err.value) == (
        f"POST {base}/realtime/calls: Not Found (HTTP 404); the base URL usually ends in /v1: --base-url {base}/v1"
    )


async def test_a_404_from_the_websocket_upgrade_names_the_url_and_suggests_v1() -> None:
    async with RealtimeServer(port=0) as server:
        base = server.base_url.removesuffix("/v1")
        transport = WebSocketTransport(ClientSettings(base_url=base, api_key="sk-x", transport="websocket"))
        with pytest.raises(NotFoundError) as err:
            await transport.open(SessionConfig(), Ignored())
    ws = base.replace("http://", "ws://")
    assert str(err.value) == (
        f"GET {ws}/realtime?model=gpt-realtime: Not Found (HTTP 404); "
        f"the base URL usually ends in /v1: --base-url {base}/v1"
    )


def test_the_v1_hint_is_only_for_a_base_url_without_it() -> None:
    assert base_url_hint("https://api.openai.com/v1/") is None
    assert (
        base_url_hint("http://127.0.0.1:8000/")
        == "the base URL usually ends in /v1: --base-url http://127.0.0.1:8000/v1"
    )


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_base_url_is_a_configuration_error_before_any_request(url: str) -> None:
    args = build_parser().parse_args(["call", "--input", "in.wav", "--api-key", "k", "--base-url", url])
    with pytest.raises(ConfigError) as err:
        call_setup(args)
    assert str(err.value).startswith(f'base_url: "{url}" is not an http:// or https:// URL with a host')


async def test_a_request_that_cannot_be_sent_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    """What httpx refuses to send (a URL it has no protocol for, a header that is not HTTP) fails at once, without
    the retries a refused connection gets, and without quoting the header (it may be the key)."""
    caplog.set_level(logging.WARNING)
    unvalidated = ClientSettings.model_construct(base_url="htp://127.0.0.1:9/v1", api_key="sk-x")
    async with CallsAPI(unvalidated) as api:
        with pytest.raises(ConfigError, match=r"unsupported protocol 'htp://'"):
            await api.create_call(SDP)
    async with RealtimeServer(port=0) as server:
        async with CallsAPI(ClientSettings(base_url=server.base_url, api_key="sk-secret\n")) as api:
            with pytest.raises(ConfigError, match="not valid HTTP") as err:
                await api.create_call(SDP)
    assert "sk-secret" not in str(err.value)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_the_command_line_says_how_to_give_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = build_parser().parse_args(["call", "--input", "in.wav", "--base-url", "http://127.0.0.1:9/v1"])
    with pytest.raises(AuthenticationError) as err:
        call_setup(args)
    assert str(err.value) == "no API key: pass --api-key (any value works for voiceclient serve) or set OPENAI_API_KEY"
    assert err.value.exit_code == 3


async def test_the_library_without_a_key_names_the_variable_before_any_request() -> None:
    async with RealtimeServer(port=0) as server:
        keyless = ClientSettings(base_url=server.base_url)
        async with CallsAPI(keyless) as api:
            with pytest.raises(AuthenticationError) as over_http:
                await api.create_call(SDP)
        with pytest.raises(AuthenticationError) as over_websocket:
            await WebSocketTransport(keyless.model_copy(update={"transport": "websocket"})).open(
                SessionConfig(), Ignored()
            )
        expected = "no API key: pass api_key to ClientSettings or set OPENAI_API_KEY"
        assert str(over_http.value) == str(over_websocket.value) == expected
        # A key in `headers` (Azure's api-key, the Agents SDK's Authorization) is a key: the request is made (and
        # the server, past its key check, refuses this test's bare SDP).
        with_header = ClientSettings(base_url=server.base_url, headers={"Authorization": "Bearer sk-h"})
        async with CallsAPI(with_header) as api:
            with pytest.raises(InvalidOfferError):
                await api.create_call(SDP)
