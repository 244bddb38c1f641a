"""docs/protocol.md stays true to the server: its event tables name exactly the events the code handles and
sends, and the page names no event type the code does not know. No network, no server: the code is read.

Where the event types come from:

- **Client events the server dispatches**: the `isinstance(event, ev.X)` branches of `RealtimeDialect._command`
  (`voiceclient/server/realtime.py`, the Realtime API's side of the protocol seam: each branch turns one client
  event into one of the core's commands), each class mapped to its `type` literal in
  `voiceclient/protocol/events.py`. They are also checked against `CLIENT_EVENT_TYPES`, the union the server
  decodes with.
- **Server events the server sends**: the server builds every event it sends from the models of
  `voiceclient/protocol/events.py` (serialized in one place, `server_event_wire`), so each call `ev.X(...)` in
  `voiceclient/server/*.py` whose `X` is a server event model names one event it sends (its `type` literal), and
  `ev.error_event(...)` the `error` event. Read with `ast`, not a regex, so formatting cannot hide one. (The calls
  are all in `server/realtime.py`, the Realtime dialect, as tests/test_architecture.py requires; every module is
  read all the same.)
  `protocol/events.py` alone would not do: it models every GA event, including some the server never sends.
  A few dotted `type`s in the server are its own dicts, never on the wire (the console's, the event watchers');
  they are listed in `NOT_ON_THE_WIRE`, and the test fails if one disappears, so the list cannot rot.
- **The page**: the first cell of each row of the tables under "## Client events" and "## Server events", the
  numbered lists of the example turn, and any backticked name anywhere that looks like an event type (its
  first segment an event namespace; `session.X` is a session field path when X is a session field).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "protocol.md"
SERVER = ROOT / "voiceclient" / "server"
SOURCES = sorted(SERVER.glob("*.py"))
EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
# Dotted `type`s of the server's own events, for the console and its watchers; never sent to a client.
NOT_ON_THE_WIRE = {
    "conversation.history": "console.py",  # the head of a session's event log, in the console
    "server.fault": "session.py",  # an injected fault, as the console shows it
    "voiceclient.malformed": "session.py",  # a client message that was not JSON, as the console shows it
}
NAMESPACES = {
    "session",
    "conversation",
    "input_audio_buffer",
    "output_audio_buffer",
    "response",
    "rate_limits",
    "mcp_list_tools",
}


def type_literals(path: Path) -> set[str]:
    """The string values of every `"type"` key of a dict literal in `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and key.value == "type"):
                continue
            for v in [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    found.add(v.value)
    return found


def built_events(path: Path) -> set[str]:
    """The `type` of every server event `path` builds: `ev.X(...)` with X a server event model, and
    `ev.error_event(...)`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "ev"
        ):
            continue
        model = getattr(ev, node.func.attr)
        if node.func.attr == "error_event":
            found.add("error")
        elif isinstance(model, type) and issubclass(model, ev.ServerEvent):
            found.add(model.model_fields["type"].default)
    return found


def dotted_types_by_file() -> dict[str, set[str]]:
    """Per file, the event-shaped `type`s it builds or writes in a dict literal."""
    return {
        path.name: built_events(path) | {t for t in type_literals(path) if EVENT_TYPE.match(t) or t == "error"}
        for path in SOURCES
    }


def sent_by_server() -> set[str]:
    every = set().union(*dotted_types_by_file().values())
    return every - set(NOT_ON_THE_WIRE)


def dispatched_by_server() -> set[str]:
    """The `type` of each client event class `RealtimeDialect._command` has a branch for."""
    tree = ast.parse((SERVER / "realtime.py").read_text(encoding="utf-8"))
    handle = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_command")
    names = {
        node.args[1].attr
        for node in ast.walk(handle)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and isinstance(node.args[1], ast.Attribute)
    }
    return {getattr(ev, name).model_fields["type"].default for name in names}


def section(text: str, heading: str) -> str:
    """The text of `## heading` up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_types(text: str) -> list[str]:
    """The backticked event name in the first cell of each table row (not the header's `type`)."""
    cells = re.findall(r"^\| `([a-z_.]+)` \|", text, re.M)
    return [name for name in cells if EVENT_TYPE.match(name) or name == "error"]


def listed_types(text: str) -> set[str]:
    """Every backticked event-shaped name of the numbered lists."""
    return {
        name
        for line in re.findall(r"^\d+\. (.*)$", text, re.M)
        for name in re.findall(r"`([a-z_.]+)`", line)
        if EVENT_TYPE.match(name)
    }


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_the_sources_are_read_as_expected() -> None:
    """The scans find what is certainly there, so an empty scan cannot pass the checks below."""
    by_file = dotted_types_by_file()
    for name, where in NOT_ON_THE_WIRE.items():
        assert name in by_file[where], f"{name} is no longer in server/{where}: drop it from NOT_ON_THE_WIRE"
    sent = sent_by_server()
    assert {"error", "session.created", "response.done", "response.output_audio.delta"} <= sent
    assert {"response.output_text.delta", "response.output_audio_transcript.delta"} <= sent
    assert dispatched_by_server() == set(ev.CLIENT_EVENT_TYPES), "a client event the server decodes but ignores"


def assert_table_is(heading: str, code: set[str], done: str) -> None:
    """The table under `heading` names each of `code`'s event types once, and no other."""
    rows = table_types(section(page(), heading))
    assert len(rows) == len(set(rows)), f"an event twice in the {heading} table"
    assert not code - set(rows), f"{done} by the server, missing from the page: {sorted(code - set(rows))}"
    assert not set(rows) - code, f"in the page's {heading} table, not {done}: {sorted(set(rows) - code)}"


def test_every_event_the_server_sends_is_in_the_server_table() -> None:
    assert_table_is("Server events", sent_by_server(), "sent")


def test_every_client_event_the_server_dispatches_is_in_the_client_table() -> None:
    assert_table_is("Client events", dispatched_by_server(), "handled")


def test_the_example_turn_names_only_events_of_its_direction() -> None:
    listed = listed_types(section(page(), "Server events"))
    assert listed, "the example turn's lists are gone"
    assert not listed - sent_by_server(), sorted(listed - sent_by_server())


def test_the_page_names_no_event_the_code_does_not_know() -> None:
    known = set(ev.SERVER_EVENT_TYPES) | set(ev.CLIENT_EVENT_TYPES)
    fields = set(SessionConfig.model_fields)
    unknown = set()
    for name in re.findall(r"`([a-z_]+(?:\.[a-z_*]+)+)`", page()):
        first, second = name.split(".")[:2]
        if first not in NAMESPACES or name in known:
            continue
        if first == "session" and second in fields:  # a session field's path (`session.audio.output.voice`)
            continue
        if name.endswith(".*") and any(k.startswith(name[:-1]) for k in known):  # `output_audio_buffer.*`
            continue
        unknown.add(name)
    assert not unknown, f"the page names event types the code does not know: {sorted(unknown)}"
