"""The layout's rules, checked on the source: which layer may import which, no cycles, no private names across
modules, pytest only in voiceclient.testing.plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(20)
PACKAGE = Path(__file__).resolve().parents[1] / "voiceclient"
# What each layer may import of ours (module-level imports; a function-level import is a deliberate lazy edge).
ALLOWED = {
    "errors": set(),
    "tasks": set(),
    "lazy": set(),
    "loading": {"errors"},  # user code named on the command line
    "protocol": {"errors"},
    "audio": {"errors", "tasks"},
    "rtc": {"errors", "protocol", "audio"},
    "tools": {"errors", "tasks", "protocol", "loading"},
    "client": {"errors", "tasks", "protocol", "audio", "rtc", "tools"},
    "server": {"errors", "tasks", "protocol", "audio", "rtc", "report"},  # (report: the console's timeline pages)
    "report": {"errors"},  # a call's timeline page, from its files
    # offline speech and the agent (server: the agent is a responder; the server never imports speech)
    "speech": {"errors", "tasks", "protocol", "audio", "server"},
    "app": {"errors", "tasks", "protocol", "audio", "rtc", "tools", "client", "server", "report", "speech"},
    "testing": {"errors", "tasks", "lazy", "protocol", "audio", "rtc", "tools", "client", "server", "report", "speech"},
    "agents": {"errors", "tasks", "loading", "protocol", "audio", "client"},  # the SDK model, --agent
    "locust": {"errors", "lazy", "protocol", "audio", "client"},  # load tests on Locust (gevent; imports locust)
}


def test_every_layer_has_rules() -> None:
    assert {layer(m) for m in MODULES} - {"", "__main__"} == set(ALLOWED)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module, names, at module level outside TYPE_CHECKING) for each `from voiceclient... import`."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, list[str], bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, False)
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("voiceclient"):
                out.append((child.module or "", [a.name for a in child.names], top))
            elif isinstance(child, ast.Import):
                out.extend((a.name, [], top) for a in child.names if a.name.startswith("voiceclient"))
            else:
                visit(child, top)

    visit(tree, True)
    return out


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_layers_import_only_what_they_build_on() -> None:
    wrong = []
    for module, path in MODULES.items():
        for target, _, top in imports(path):
            if (
                top
                and layer(target) != layer(module)
                and layer(module) in ALLOWED
                and layer(target) not in ALLOWED[layer(module)]
                and target != "voiceclient"
            ):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {m: {t for t, _, top in imports(p) if top and t in MODULES and t != m} for m, p in MODULES.items()}
    for m, p in MODULES.items():  # `from voiceclient.x import name` where name is a module counts as an edge too
        for target, names, top in imports(p):
            graph[m] |= {f"{target}.{n}" for n in names if top and f"{target}.{n}" in MODULES}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{m} imports {t}.{n}"
        for m, p in MODULES.items()
        for t, names, _ in imports(p)
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    private += [
        f"{m} imports {t}"
        for m, p in MODULES.items()
        for t, _, _ in imports(p)
        if any(part.startswith("_") and not part.startswith("__") for part in t.split("."))
    ]
    assert private == []


def test_only_the_pytest_plugin_imports_pytest() -> None:
    users = [m for m, p in MODULES.items() if "import pytest" in p.read_text() or "from pytest" in p.read_text()]
    assert users == ["voiceclient.testing.plugin"]


# The protocol seam (`voiceclient/server/dialect.py`): the session core, its parts, the edges (the memory edge too),
# the turn detector and the responders reach the wire protocol only through a `Dialect`. Only the Realtime dialect
# builds and decodes the Realtime API's events and knows its session schema, only the GPT-Live dialect GPT-Live's;
# `new_id` (ids) is anyone's.
SPOKEN_BY = {
    "voiceclient.protocol.events": {"voiceclient.server.realtime"},
    "voiceclient.protocol.live_events": {"voiceclient.server.live"},
    "voiceclient.protocol.session": {
        "voiceclient.server.realtime",
        "voiceclient.server.session_rules",
        "voiceclient.server.transcription",
    },
    "voiceclient.server.session_rules": {"voiceclient.server.realtime"},
    "voiceclient.server.transcription": {"voiceclient.server.realtime"},
}
HELPERS = {"voiceclient.protocol.events": {"new_id"}}


def imported(path: Path) -> set[str]:
    """Every module of ours `path` imports names of (a module imported by name, `from x import y`, counts as y)."""
    out = set()
    for target, names, _ in imports(path):
        modules = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
        rest = [n for n in names if f"{target}.{n}" not in MODULES]
        out |= modules
        if not names or (rest and not set(rest) <= HELPERS.get(target, set())):
            out.add(target)
    return out


def test_only_the_dialect_speaks_the_realtime_protocol() -> None:
    held = [m for m in MODULES if layer(m) == "server" or m == "voiceclient.testing.memory"]
    assert "voiceclient.server.realtime" in held and "voiceclient.server.session" in held
    wrong = sorted(
        f"{m} imports {target}"
        for m in held
        for target in imported(MODULES[m])
        if target in SPOKEN_BY and m not in SPOKEN_BY[target]
    )
    assert wrong == []
    # The rule reads what it should: the Realtime dialect does import the event models.
    assert "voiceclient.protocol.events" in imported(MODULES["voiceclient.server.realtime"])
    assert "voiceclient.protocol.live_events" in imported(MODULES["voiceclient.server.live"])
