"""Installed tool plugins: the example package under fixtures/ is built and installed (offline) for these tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, read_events
from .test_cli import run_cli

pytestmark = pytest.mark.timeout(120)
PLUGIN = FIXTURES / "plugins" / "voiceclient-example-tools"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return str(target)


def env_with(plugin_path: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}


async def tools_json(plugin_path: str, *args: str) -> dict:
    code, out, err = await run_cli("tools", "--json", *args, env=env_with(plugin_path))
    assert code == 0, err
    return json.loads(out)


async def test_installed_plugins_are_discovered_but_not_exposed_until_enabled(plugin_path: str) -> None:
    listing = await tools_json(plugin_path)
    plugins = {s["name"]: s for s in listing["sources"] if s["installed"]}
    assert set(plugins) >= {"example", "example-dice"}
    assert plugins["example"]["tools"] == ["convert_units", "send_email"]
    assert plugins["example-dice"]["tools"] == ["roll_dice"]
    assert "voiceclient-example-tools 1.0.0" in plugins["example"]["origin"]
    assert not any(s["enabled"] for s in plugins.values())
    assert listing["enabled"] == [] and listing["schema"] == []


async def test_config_enables_plugins_and_filters_tools(plugin_path: str, tmp_path: Path) -> None:
    config = tmp_path / "voiceclient.toml"
    config.write_text('[tools]\nplugins = ["example", "example-dice"]\ndisable = ["send_email"]\n')
    listing = await tools_json(plugin_path, "--config", str(config))
    assert listing["enabled"] == ["convert_units", "roll_dice"]
    convert = listing["schema"][0]
    assert convert["name"] == "convert_units" and convert["description"] == "Convert a value between units."
    assert convert["parameters"]["properties"]["value"] == {"description": "the amount to convert", "type": "number"}
    assert convert["parameters"]["required"] == ["value", "source", "target"]
    config.write_text('[tools]\nplugins = ["*"]\nenable = ["roll_dice"]\n')
    assert (await tools_json(plugin_path, "--config", str(config)))["enabled"] == ["roll_dice"]


@pytest.mark.parametrize(
    "config_text, extra, message",
    [
        ('[tools]\nplugins = ["nope"]\n', [], "[tools] plugins: nope not installed (installed: example, example-dice"),
        ('[tools]\nplugins = ["example"]\nenable = ["ghost"]\n', [], "[tools] enable: no enabled source offers ghost"),
        ('[tools]\nplugins = ["example"]\n', ["dup"], "tool 'convert_units' is defined twice: in "),
        ("[tools]\ntimeout = -1\n", [], "tools.timeout: -1 is not allowed"),
        ("[tool]\nplugins = []\n", [], "unknown section(s) tool"),
    ],
)
async def test_config_mistakes_are_one_line_errors(
    plugin_path: str, tmp_path: Path, config_text: str, extra: list[str], message: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(config_text)
    args = ["tools", "--config", str(config)]
    if extra:
        dup = tmp_path / "dup.py"
        dup.write_text("from voiceclient import tool\n@tool\ndef convert_units(x: int) -> int:\n    return x\n")
        args += ["--tools", str(dup)]
    code, _, err = await run_cli(*args, env=env_with(plugin_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    if extra:
        assert "plugin example" in err


async def test_a_call_uses_an_enabled_plugin_tool(plugin_path: str, tmp_path: Path) -> None:
    scenario = tmp_path / "convert.toml"
    scenario.write_text(
        '[[turns]]\n  [[turns.calls]]\n  name = "convert_units"\n'
        '  arguments = { value = 10, source = "km", target = "mi" }\n'
        '  [turns.after_tools]\n  text = "That is {output[value]} {output[unit]}."\n'
    )
    config = tmp_path / "voiceclient.toml"
    config.write_text(
        '[session.audio.input.turn_detection]\ntype = "server_vad"\nsilence_duration_ms = 800\n'
        '[tools]\nplugins = ["example"]\n'
    )
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=ScenarioResponder.from_file(scenario)) as server:
        code, out, err = await run_cli(
            "call",
            "--config",
            str(config),
            "--input",
            str(FIXTURES / "hello.wav"),
            "--events",
            str(events),
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-x",
            "--idle-exit",
            "1",
            env=env_with(plugin_path),
        )
    assert code == 0, err
    assert "assistant: That is 6.2137 mi." in out
    update = next(e["event"] for e in read_events(events) if e["event"]["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["convert_units", "send_email"]
