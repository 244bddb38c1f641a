"""What starting voiceclient loads: `--help`, `--version` and `import voiceclient` import none of the libraries a
call needs, and `call` does not load the server (docs/benchmarks.md, "Start-up time"). Each case is a fresh
`python -c`, so nothing this test process imported counts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(60)
# The libraries that make up most of a call's start-up (`python -X importtime`): each costs 10-150 ms to import.
HEAVY = {"numpy", "av", "aiortc", "aioice", "cryptography", "OpenSSL", "httpx", "pydantic", "aiohttp"}
# What `--help` and `--version` need not load either: the event loop, and the rest of the package.
NOT_FOR_HELP = HEAVY | {"asyncio", "voiceclient.client.settings", "voiceclient.protocol", "voiceclient.server"}
REPORT = (
    "import json, sys\n"
    "from voiceclient.app.cli import main\n"
    "try:\n"
    "    code = main(json.loads(sys.argv[1]))\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print('\\nMODULES', json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


def run(code: str, *args: str) -> tuple[str, set[str], object]:
    """Run `code` in a fresh interpreter: (its output before the report, the modules it loaded, its exit code)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, timeout=45, env=env
    ).stdout
    text, _, report = out.rpartition("MODULES ")
    loaded = json.loads(report)
    return text, set(loaded["modules"]), loaded["code"]


def among(modules: set[str], names: set[str]) -> set[str]:
    """The names (packages, or modules of ours) that `modules` holds, or any module under them."""
    return {n for n in names if any(m == n or m.startswith(n + ".") for m in modules)}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--help"], "usage: voiceclient"),
        (["--version"], "voiceclient 0."),
        (["call", "--help"], "--input IN.wav"),
        (["serve", "--help"], "--max-call-seconds"),
    ],
)
def test_the_command_line_loads_nothing_heavy_before_a_command_runs(argv: list[str], says: str) -> None:
    text, modules, code = run(REPORT, json.dumps(argv))
    assert says in text and code == 0
    assert among(modules, NOT_FOR_HELP) == set()


def test_importing_the_package_loads_nothing_heavy() -> None:
    text, modules, _ = run(
        "import json, sys, voiceclient\n"
        "print(voiceclient.__version__, 'VoiceCall' in dir(voiceclient))\n"
        "print('MODULES', json.dumps({'code': 0, 'modules': sorted(sys.modules)}))\n"
    )
    assert text.split() == ["0.1.0", "True"]
    assert among(modules, NOT_FOR_HELP) == set()


def test_a_public_name_loads_what_it_needs_and_no_more() -> None:
    # the check above can fail: a name that needs pydantic loads it (and still not the server, nor a call's WebRTC)
    _, modules, _ = run(
        "import json, sys\n"
        "from voiceclient import SessionConfig\n"
        "SessionConfig()\n"
        "print('MODULES', json.dumps({'code': 0, 'modules': sorted(sys.modules)}))\n"
    )
    assert among(modules, HEAVY) == {"pydantic"}
    assert among(modules, {"voiceclient.server", "voiceclient.client.call"}) == set()


def test_a_call_loads_the_client_and_not_the_server() -> None:
    # No API key: the call stops after its flags are checked, with everything it needs to make a call imported.
    _, modules, code = run(REPORT, json.dumps(["call", "--input", str(FIXTURES / "hello.wav")]))
    assert code == 3
    assert {"voiceclient.client.call", "voiceclient.client.settings", "voiceclient.audio.sources"} <= modules
    assert among(modules, {"voiceclient.server", "voiceclient.speech", "aiohttp"}) == set()


def test_a_calls_webrtc_does_not_load_the_emulated_network() -> None:
    _, modules, _ = run(
        "import json, sys\n"
        "import voiceclient.client.call, voiceclient.rtc.peer\n"
        "print('MODULES', json.dumps({'code': 0, 'modules': sorted(sys.modules)}))\n"
    )
    assert "aiortc" in modules and among(modules, {"voiceclient.rtc.impair", "voiceclient.rtc.netem"}) == set()


def test_httpx_is_imported_without_its_command_line_which_stays_importable() -> None:
    text, modules, _ = run(
        "import json, sys, ssl\n"
        "from voiceclient.client.http import client_for, httpx, tls_context\n"
        "plain = client_for('http://127.0.0.1:8000/v1', 5.0)\n"
        "print(tls_context() is tls_context(), isinstance(tls_context(), ssl.SSLContext))\n"
        "print('MODULES', json.dumps({'code': 0, 'modules': sorted(sys.modules)}))\n"
    )
    assert text.split() == ["True", "True"]
    assert among(modules, {"httpx._main", "rich", "click", "pygments"}) == set() and "httpx" in modules
    if not all(importlib.util.find_spec(m) for m in ("click", "rich", "pygments")):
        return  # httpx's command line is not installed here: nothing to leave out
    out = subprocess.run(
        [sys.executable, "-c", "import voiceclient.client.http, httpx._main; print(httpx._main.__name__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "httpx._main"
