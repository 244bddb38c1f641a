"""The embedded server's HTTP surface, over real HTTP on 127.0.0.1, as official clients use it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from voiceclient.server import RealtimeServer

pytestmark = pytest.mark.timeout(30)
AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture
async def offer() -> AsyncIterator[str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    yield pc.localDescription.sdp
    await pc.close()


@pytest.fixture
async def http(server: RealtimeServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


def error_of(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_multipart_with_part_types_answers_201_with_sdp_and_relative_location(http, offer, server) -> None:
    session = {"type": "realtime", "instructions": "hi"}
    resp = await http.post(
        "/realtime/calls",
        headers={**AUTH, "Accept": "application/sdp"},
        files={"sdp": (None, offer, "application/sdp"), "session": (None, json.dumps(session), "application/json")},
    )
    assert resp.status_code == 201
    assert resp.headers["content-type"].startswith("application/sdp")
    location = resp.headers["location"]
    assert location.startswith("/v1/realtime/calls/rtc_")
    answer = resp.text
    assert answer.startswith("v=0") and "a=setup:active" in answer and "opus/48000/2" in answer
    assert "webrtc-datachannel" in answer and "a=candidate:" in answer
    call_id = location.rsplit("/", 1)[1]
    assert server.calls[call_id].session["instructions"] == "hi"
    hang = await http.post(f"/realtime/calls/{call_id}/hangup", headers=AUTH)
    assert hang.status_code == 200
    again = await http.post(f"/realtime/calls/{call_id}/hangup", headers=AUTH)
    assert again.status_code == 404 and error_of(again)["code"] == "call_not_found"


async def test_browser_formdata_without_part_content_types_is_accepted(http, offer) -> None:
    # What `FormData.set("sdp", text)` sends: multipart parts with no per-part Content-Type.
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n{offer}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="session"\r\n\r\n'
        f"{json.dumps({'type': 'realtime'})}\r\n--{boundary}--\r\n"
    )
    resp = await http.post(
        "/realtime/calls",
        content=body.encode(),
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "case, status, code, param",
    [
        ("no_auth", 401, None, None),
        ("garbage_sdp", 400, "invalid_offer", "sdp"),
        ("no_type", 400, "missing_required_parameter", "session.type"),
        ("not_json", 400, "invalid_json", "session"),
        ("bad_value", 400, "invalid_value", "session.audio.output.speed"),
        ("beta_shape", 400, "invalid_type", "session.audio.input.format"),
        ("unknown_field", 400, "unknown_parameter", "session.voice"),
        ("json_body", 415, "unsupported_content_type", None),
        ("raw_sdp_project_key", 401, "invalid_api_key", None),
        ("beta_header", 400, "beta_api_shape_disabled", None),
        ("not_a_realtime_model", 404, "model_not_found", None),
    ],
)
async def test_bad_requests_get_the_error_envelope_and_the_server_stays_up(
    http, offer, case, status, code, param
) -> None:
    files = {"sdp": (None, offer, "application/sdp")}
    kw: dict = {"headers": AUTH, "files": files}
    if case == "no_auth":
        kw["headers"] = {}
    elif case == "garbage_sdp":
        kw["files"] = {"sdp": (None, "this is not sdp", "application/sdp")}
    elif case == "no_type":
        files["session"] = (None, json.dumps({"instructions": "x"}), "application/json")
    elif case == "not_json":
        files["session"] = (None, "{oops", "application/json")
    elif case == "bad_value":
        files["session"] = (None, json.dumps({"type": "realtime", "audio": {"output": {"speed": 4}}}), None)
    elif case == "beta_shape":
        files["session"] = (None, json.dumps({"type": "realtime", "audio": {"input": {"format": "pcm16"}}}), None)
    elif case == "unknown_field":
        files["session"] = (None, json.dumps({"type": "realtime", "voice": "alloy"}), None)
    elif case == "json_body":
        kw = {"headers": AUTH, "json": {"sdp": offer, "session": {"type": "realtime"}}}
    elif case == "raw_sdp_project_key":
        kw = {"headers": {**AUTH, "Content-Type": "application/sdp"}, "content": offer}
    elif case == "beta_header":
        kw["headers"] = {**AUTH, "OpenAI-Beta": "realtime=v1"}
    elif case == "not_a_realtime_model":
        files["session"] = (None, json.dumps({"type": "realtime", "model": "gpt-4o-mini"}), None)
    resp = await http.post("/realtime/calls", **kw)
    assert resp.status_code == status, resp.text
    err = error_of(resp)
    assert err["code"] == code and err["param"] == param and err["message"]
    ok = await http.post("/realtime/calls", headers=AUTH, files={"sdp": (None, offer, "application/sdp")})
    assert ok.status_code == 201


async def test_ephemeral_key_with_raw_sdp(http, offer, server) -> None:
    secret = await http.post(
        "/realtime/client_secrets",
        headers=AUTH,
        json={
            "expires_after": {"anchor": "created_at", "seconds": 60},
            "session": {"type": "realtime", "instructions": "from the secret"},
        },
    )
    assert secret.status_code == 200
    body = secret.json()
    assert body["value"].startswith("ek_") and body["session"]["instructions"] == "from the secret"
    assert body["session"]["object"] == "realtime.session" and body["expires_at"] > 0
    resp = await http.post(
        "/realtime/calls",
        content=offer,
        headers={"Authorization": f"Bearer {body['value']}", "Content-Type": "application/sdp"},
    )
    assert resp.status_code == 201
    call_id = resp.headers["location"].rsplit("/", 1)[1]
    assert server.calls[call_id].session["instructions"] == "from the secret"
    bad = await http.post(
        "/realtime/calls",
        content=offer,
        headers={"Authorization": "Bearer ek_unknown", "Content-Type": "application/sdp"},
    )
    assert bad.status_code == 401 and error_of(bad)["code"] == "invalid_api_key"
    too_long = await http.post("/realtime/client_secrets", headers=AUTH, json={"expires_after": {"seconds": 9000}})
    assert too_long.status_code == 400 and error_of(too_long)["param"] == "expires_after.seconds"


async def test_a_transcription_session_over_webrtc_by_multipart_or_ephemeral_key(http, offer, server) -> None:
    """`/calls` with a `type: "transcription"` session (or an `ek_` issued for one) opens a transcription call;
    a transcription session with a realtime field is refused before any call exists."""
    session = {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    resp = await http.post(
        "/realtime/calls",
        headers=AUTH,
        files={"sdp": (None, offer, "application/sdp"), "session": (None, json.dumps(session), "application/json")},
    )
    assert resp.status_code == 201
    call = server.calls[resp.headers["location"].rsplit("/", 1)[1]]
    assert call.session["type"] == "transcription" and "model" not in call.session
    assert call.session["audio"]["input"]["transcription"]["model"] == "whisper-1"
    secret = (await http.post("/realtime/client_secrets", headers=AUTH, json={"session": session})).json()
    assert secret["session"]["type"] == "transcription" and secret["session"]["expires_at"] == secret["expires_at"]
    resp = await http.post(
        "/realtime/calls",
        content=offer,
        headers={"Authorization": f"Bearer {secret['value']}", "Content-Type": "application/sdp"},
    )
    assert resp.status_code == 201
    assert server.calls[resp.headers["location"].rsplit("/", 1)[1]].session["type"] == "transcription"
    bad = await http.post(
        "/realtime/client_secrets", headers=AUTH, json={"session": {"type": "transcription", "model": "gpt-realtime"}}
    )
    assert bad.status_code == 400 and (error_of(bad)["code"], error_of(bad)["param"]) == (
        "unknown_parameter",
        "session.model",
    )


async def test_cors_lets_a_page_on_another_origin_read_location(http, offer) -> None:
    pre = await http.options(
        "/realtime/calls",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    resp = await http.post(
        "/realtime/calls",
        headers={**AUTH, "Origin": "http://localhost:5173"},
        files={"sdp": (None, offer, "application/sdp")},
    )
    assert "location" in resp.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    "sdk, requested",
    [
        # @openai/agents-realtime 0.20, OpenAIRealtimeWebRTC's SDP POST (Bearer ek_, application/sdp, its own header)
        ("agents-js webrtc", "authorization,content-type,x-openai-agents-sdk"),
        # openai-node in a browser (dangerouslyAllowBrowser): its platform headers, retry count and timeout
        (
            "openai-node",
            "authorization,content-type,accept,x-stainless-arch,x-stainless-lang,x-stainless-os,"
            "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
            "x-stainless-runtime-version,x-stainless-timeout",
        ),
        ("openai-node with organization and project", "authorization,openai-organization,openai-project"),
        ("OpenAI's browser guide (fetch)", "authorization,content-type"),
    ],
)
async def test_the_preflight_allows_what_openais_sdks_send(http, sdk: str, requested: str) -> None:
    pre = await http.options(
        "/realtime/calls",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )
    assert pre.status_code == 204
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert set(requested.split(",")) <= allowed, sdk
    assert pre.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_the_preflight_allows_no_third_party_header(http) -> None:
    """The real service refused a page that added `originator`; so does this one: the browser sees it missing
    from the allowed list and never sends the POST."""
    pre = await http.options(
        "/realtime/calls",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,originator",
        },
    )
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert "originator" not in allowed and "*" not in allowed


async def test_required_api_key(offer) -> None:
    async with RealtimeServer(port=0, api_key="sk-right") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            wrong = await http.post(
                "/realtime/calls",
                headers={"Authorization": "Bearer sk-wrong"},
                files={"sdp": (None, offer, "application/sdp")},
            )
            assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_api_key"
            right = {"Authorization": "Bearer sk-right"}
            made = await http.post("/realtime/calls", headers=right, files={"sdp": (None, offer, "application/sdp")})
            call_id = made.headers["Location"].rsplit("/", 1)[-1]
            # a hangup is as guarded as the call: another key cannot end it
            refused = await http.post(f"/realtime/calls/{call_id}/hangup", headers={"Authorization": "Bearer sk-x"})
            assert refused.status_code == 401 and error_of(refused)["code"] == "invalid_api_key"
            assert server.calls.get(call_id) is not None
            ended = await http.post(f"/realtime/calls/{call_id}/hangup", headers=right)
            assert ended.status_code == 200


async def test_the_official_openai_sdk_creates_a_call(server, offer) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
    raw = await client.realtime.calls.with_raw_response.create(
        sdp=offer, session={"type": "realtime", "instructions": "from the SDK"}
    )
    assert raw.status_code == 201
    call_id = raw.headers["location"].rsplit("/", 1)[1]
    assert raw.parse().text.startswith("v=0")
    assert server.calls[call_id].session["instructions"] == "from the SDK"
    await client.realtime.calls.hangup(call_id)
    assert call_id not in server.calls
    secret = await client.realtime.client_secrets.create(session={"type": "realtime"})
    assert secret.value.startswith("ek_")
    await client.close()


async def test_a_call_whose_client_never_connects_is_ended(offer, monkeypatch) -> None:
    from voiceclient.server import call as call_module

    monkeypatch.setattr(call_module, "CONNECT_TIMEOUT", 0.5)
    async with RealtimeServer(port=0) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            resp = await http.post("/realtime/calls", headers=AUTH, files={"sdp": (None, offer, "application/sdp")})
        assert resp.status_code == 201 and len(server.calls) == 1  # the offerer never sets the answer
        call = server.history[-1]
        await asyncio.wait_for(call.closed.wait(), 5)
        assert server.calls == {}


BIG = b"a" * 20_000_000  # 20 MB without a newline: far over the body limit


def form(*parts: str, boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    """A multipart body of raw parts (each: its header lines, a blank line, its content) and its headers."""
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    return body.encode(), {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}


async def ephemeral_key(http: httpx.AsyncClient) -> str:
    resp = await http.post("/realtime/client_secrets", headers=AUTH, json={})
    return resp.json()["value"]


async def chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    "case", ["raw_sdp", "raw_sdp_chunked", "multipart", "multipart_chunked", "client_secrets", "client_secrets_chunked"]
)
async def test_a_body_over_the_limit_is_413_in_the_error_shape_and_the_server_keeps_serving(http, offer, case) -> None:
    if case.startswith("raw_sdp"):
        headers = {"Authorization": f"Bearer {await ephemeral_key(http)}", "Content-Type": "application/sdp"}
        body, path = BIG, "/realtime/calls"
    elif case.startswith("multipart"):
        body, headers = form('Content-Disposition: form-data; name="sdp"\r\n\r\n' + BIG.decode())
        path = "/realtime/calls"
    else:
        body = json.dumps({"session": {"type": "realtime", "instructions": BIG.decode()}}).encode()
        headers, path = {**AUTH, "Content-Type": "application/json"}, "/realtime/client_secrets"
    content = chunks(body) if case.endswith("chunked") else body  # chunked: no Content-Length to refuse early
    resp = await http.post(path, headers=headers, content=content)
    assert resp.status_code == 413, resp.text
    err = error_of(resp)
    assert err["code"] == "request_too_large" and "1 MiB" in err["message"] and "\n" not in err["message"]
    ok = await http.post("/realtime/calls", headers=AUTH, files={"sdp": (None, offer, "application/sdp")})
    assert ok.status_code == 201


async def test_a_big_body_to_a_call_that_reads_none_is_no_500(http) -> None:
    resp = await http.post("/realtime/calls/rtc_nobody/hangup", headers=AUTH, content=BIG)
    assert resp.status_code == 404 and error_of(resp)["code"] == "call_not_found"


@pytest.mark.parametrize(
    "case, code",
    [
        ("sdp_not_utf8", "invalid_encoding"),
        ("sdp_unknown_charset", "invalid_encoding"),
        ("json_not_utf8", "invalid_encoding"),
        ("json_too_deep", "invalid_json"),
        ("bad_gzip", "invalid_body"),
    ],
)
async def test_an_unreadable_body_is_a_400_not_a_500(http, offer, case, code) -> None:
    json_headers = {**AUTH, "Content-Type": "application/json"}
    if case.startswith("sdp"):
        charset = "; charset=bogus" if case == "sdp_unknown_charset" else ""
        headers = {"Authorization": f"Bearer {await ephemeral_key(http)}", "Content-Type": "application/sdp" + charset}
        resp = await http.post("/realtime/calls", headers=headers, content=b"v=0\r\n\xff\xfe")
    elif case == "json_not_utf8":
        resp = await http.post("/realtime/client_secrets", headers=json_headers, content=b'{"a": "\xff"}')
    elif case == "json_too_deep":
        resp = await http.post("/realtime/client_secrets", headers=json_headers, content=b"[" * 100_000)
    else:
        headers = {**json_headers, "Content-Encoding": "gzip"}
        resp = await http.post("/realtime/client_secrets", headers=headers, content=b"not gzip at all")
    assert resp.status_code == 400, resp.text
    err = error_of(resp)
    assert err["code"] == code and "\n" not in err["message"], err
    ok = await http.post("/realtime/calls", headers=AUTH, files={"sdp": (None, offer, "application/sdp")})
    assert ok.status_code == 201


SDP_PART = 'Content-Disposition: form-data; name="sdp"\r\n\r\nv=0'
SESSION_PART = 'Content-Disposition: form-data; name="session"\r\n\r\n{"type": "realtime"}'


@pytest.mark.parametrize(
    "parts, code, param, says",
    [
        (["\r\nv=0"], "invalid_multipart", None, "a part with no name"),  # no headers at all
        (["Content-Disposition: form-data\r\n\r\nv=0"], "invalid_multipart", None, "a part with no name"),
        (['Content-Disposition: form-data; name=""\r\n\r\nv=0'], "invalid_multipart", None, "a part with no name"),
        (["Content-Type: application/sdp\r\n\r\nv=0"], "invalid_multipart", None, "a part with no name"),
        ([SDP_PART, SDP_PART], "invalid_multipart", "sdp", "'sdp' more than once"),
        ([SDP_PART, SESSION_PART, SESSION_PART], "invalid_multipart", "session", "'session' more than once"),
        ([SESSION_PART], "missing_required_parameter", "sdp", "Missing required parameter: 'sdp'"),
        ([], "missing_required_parameter", "sdp", "no parts"),  # only the closing boundary
        (None, "missing_required_parameter", "sdp", "empty"),  # no body at all
        (
            ['Content-Disposition: form-data; name="voice"\r\n\r\nalloy', SDP_PART],
            "unknown_parameter",
            "voice",
            "'voice'",
        ),
    ],
)
async def test_odd_multipart_bodies_get_a_clear_400(http, parts, code, param, says) -> None:
    body, headers = form(*parts) if parts is not None else form()
    resp = await http.post("/realtime/calls", headers=headers, content=b"" if parts is None else body)
    assert resp.status_code == 400, resp.text
    err = error_of(resp)
    assert (err["code"], err["param"]) == (code, param), err
    assert says in err["message"] and "None" not in err["message"] and "\n" not in err["message"], err
    if code != "missing_required_parameter" or parts is None:
        assert "'sdp' (required) and 'session'" in err["message"], err  # which parts it takes
