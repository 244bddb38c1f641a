"""Request bodies of the embedded server, read within one size limit and turned into the API's error envelope.

Every route that reads a body reads it here, so nothing a client sends (too much, not UTF-8, a charset nobody
knows, JSON nested past Python's recursion limit, a broken `Content-Encoding`) reaches a handler as a 500:

    over MAX_BODY                    413 request_too_large (refused from Content-Length before reading, when given)
    undecodable text                 400 invalid_encoding
    JSON that does not parse         400 invalid_json
    a body aiohttp cannot read       400 invalid_body (a broken gzip or chunked encoding)
    multipart that does not parse    400 invalid_multipart (also: a part with no name, a part twice)
    a part the route does not take   400 unknown_parameter; a required part missing: missing_required_parameter

MAX_BODY: an SDP offer is a few kB (a browser's, with every codec it has, about 10 kB); a `session` with long
instructions and many tools is tens of kB. 1 MiB leaves a hundred times the largest offer and refuses in
milliseconds what could only be a mistake or abuse.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from voiceclient.protocol.errors import ProtocolError

MAX_BODY = 1024 * 1024  # bytes in one request body (or one multipart body, all its parts)
MAX_BODY_TEXT = "1 MiB"


def too_large(size: int | None = None) -> ProtocolError:
    """413: the body is over MAX_BODY (`size`, when the request said how big)."""
    told = f" ({size} bytes)" if size is not None else ""
    return ProtocolError(
        f"The request body is too large{told}: the limit is {MAX_BODY_TEXT} (an SDP offer is a few kB).",
        "request_too_large",
        status=413,
    )


def unreadable(exc: BaseException) -> ProtocolError:
    """400: aiohttp could not read the body (its content or transfer encoding is broken)."""
    detail = " ".join(str(exc).split()).removeprefix("400, message: ").rstrip(".")
    return ProtocolError(f"Could not read the request body: {detail}.", "invalid_body")


def decode(data: bytes | bytearray, charset: str | None, what: str) -> str:
    """`data` as text in `charset` (default UTF-8), or a 400 naming `what` (`the body`, `the 'sdp' part`)."""
    charset = charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ProtocolError(f"Unknown charset {charset!r} in {what}: send UTF-8.", "invalid_encoding") from None
    try:
        return bytes(data).decode(charset)
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"{what[0].upper()}{what[1:]} is not valid {charset}: byte {exc.start} cannot be decoded.",
            "invalid_encoding",
        ) from None


def parse_json(text: str, what: str, param: str | None = None) -> Any:
    """`text` as JSON, or a 400 naming `what`; nesting past Python's recursion limit is invalid JSON too."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc.msg}.", "invalid_json", param) from None
    except RecursionError:
        raise ProtocolError(f"{what} is not valid JSON: nested too deeply.", "invalid_json", param) from None


def check_length(request: web.Request) -> None:
    """Refuse at once a body whose Content-Length is over the limit (nothing of it is read)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large(request.content_length)


async def read_bytes(request: web.Request) -> bytes:
    """The whole body, at most MAX_BODY bytes (the app's `client_max_size` is the same limit)."""
    check_length(request)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise unreadable(exc) from None


async def read_text(request: web.Request) -> str:
    """The body as text, in the charset its Content-Type names (default UTF-8)."""
    return decode(await read_bytes(request), request.charset, "the body")


async def read_json(request: web.Request) -> Any:
    """The body as JSON; an empty body is `{}`."""
    text = await read_text(request)
    return parse_json(text, "The body") if text.strip() else {}


async def read_part(part: BodyPartReader, budget: int) -> bytes:
    """One multipart part's content, at most `budget` bytes (what is left of MAX_BODY), its
    Content-Transfer-Encoding undone (a form-data part's Content-Encoding is ignored, as RFC 7578 says)."""
    data = bytearray()
    try:
        while not part.at_eof():
            data.extend(await part.read_chunk())
            if len(data) > budget:
                raise too_large()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise unreadable(exc) from None
    return transfer_decoded(part, bytes(data))


def transfer_decoded(part: BodyPartReader, data: bytes) -> bytes:
    """`data` with the part's Content-Transfer-Encoding undone (none, base64 or quoted-printable)."""
    encoding = part.headers.get("Content-Transfer-Encoding", "binary").strip().lower()
    try:
        if encoding == "base64":
            return base64.b64decode(data)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
    except (binascii.Error, ValueError) as exc:
        problem = f"Could not decode the part {part.name!r} ({encoding}): {exc}."
        raise ProtocolError(problem, "invalid_multipart") from None
    if encoding in ("binary", "8bit", "7bit"):
        return data
    problem = f"Unknown Content-Transfer-Encoding {encoding!r} in the part {part.name!r}."
    raise ProtocolError(problem, "invalid_multipart")


def takes(parts: dict[str, bool]) -> str:
    """What a form takes, for messages: `'sdp' (required) and 'session'`."""
    names = [f"'{name}'" + (" (required)" if required else "") for name, required in parts.items()]
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


async def read_form(request: web.Request, parts: dict[str, bool]) -> dict[str, str]:
    """A multipart/form-data body as {part name: text}, within MAX_BODY in all. `parts`: the names the route
    takes, each True when required. A part with no name, a name given twice, a name not in `parts`, a body with
    no parts or without a required one: a 400 that says which parts the route takes."""
    expected = takes(parts)
    required = next(name for name, needed in parts.items() if needed)  # (the form's routes all require one)
    missing = f"Missing required parameter: '{required}'."
    check_length(request)
    if request.content_length == 0:
        raise ProtocolError(
            f"{missing} The multipart body is empty; the parts are {expected}.", "missing_required_parameter", required
        )
    found: dict[str, str] = {}
    left = MAX_BODY  # all the parts together
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, MultipartReader) or not isinstance(part, BodyPartReader):
                raise ProtocolError("Nested multipart bodies are not supported.", "invalid_multipart")
            name = part.name
            if not name:
                raise ProtocolError(
                    "The multipart body has a part with no name (each needs Content-Disposition: form-data; "
                    f'name="..."); the parts are {expected}.',
                    "invalid_multipart",
                )
            if name not in parts:
                raise ProtocolError(
                    f"Unknown parameter: '{name}'. The parts are {expected}.", "unknown_parameter", name
                )
            if name in found:
                raise ProtocolError(
                    f"The multipart body has the part '{name}' more than once; the parts are {expected}, each once.",
                    "invalid_multipart",
                    name,
                )
            data = await read_part(part, left)
            left -= len(data)
            found[name] = decode(data, part.get_charset("utf-8"), f"the '{name}' part")
    except ProtocolError:
        raise
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise unreadable(exc) from None
    except (ValueError, AssertionError) as exc:
        raise ProtocolError(f"Could not parse the multipart body: {exc}.", "invalid_multipart") from None
    if not found:
        raise ProtocolError(
            f"{missing} The multipart body has no parts; the parts are {expected}.",
            "missing_required_parameter",
            required,
        )
    for name, needed in parts.items():
        if needed and name not in found:
            raise ProtocolError(f"Missing required parameter: '{name}'.", "missing_required_parameter", name)
    return found
