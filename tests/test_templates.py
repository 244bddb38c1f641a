"""The templates of scenario and agent files: checked when a file loads (a misspelt field is a one-line error
naming the file, the place and the fields there), filled so that nothing missing is said as a brace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient.errors import ConfigError
from voiceclient.server.responders import EchoResponder, FunctionCall, ScenarioResponder, Speech, TurnContext
from voiceclient.server.templates import Unfilled, fill, tool_report
from voiceclient.speech.agent import AgentResponder, AgentSpec

pytestmark = pytest.mark.timeout(10)

WEATHER_RULE = (
    '[[rules]]\npattern = "weather in (?P<city>[a-z]+)"\n'
    'call = {{ name = "get_weather", arguments = {{ city = "{arg}" }} }}\nanswer = "{answer}"\n'
)

# (file name, contents, the whole one-line error)
BAD_FILES = [
    (
        "rules.toml",
        'fallback = "You said: {transcrpt}."\n',
        "agent rules rules.toml: fallback: unknown field {transcrpt} (did you mean transcript?); "
        "the fields here: {transcript}, {earlier[N]}, {previous}",
    ),
    (
        "rules.toml",
        WEATHER_RULE.format(arg="{cty}", answer="It is {output[forecast]}."),
        "agent rules rules.toml: rules[0] (pattern 'weather in (?P<city>[a-z]+)') call arguments.city: unknown field "
        "{cty} (did you mean city?); the fields here: {transcript}, {earlier[N]}, {previous}, {city}",
    ),
    (
        "rules.toml",
        WEATHER_RULE.format(arg="{city}", answer="It is {forecast} in {city}."),
        "agent rules rules.toml: rules[0] (pattern 'weather in (?P<city>[a-z]+)') answer: unknown field {forecast}; "
        "the fields here: {transcript}, {earlier[N]}, {previous}, {city}, {output[KEY]}, "
        "{outputs[get_weather][KEY]}",
    ),
    (
        "rules.json",
        json.dumps(
            {
                "rules": [
                    {"pattern": "hi", "say": "Hi."},
                    {
                        "pattern": "weather",
                        "call": {"name": "get_weather"},
                        "answer": "{outputs[get_wether][forecast]}",
                    },
                ]
            }
        ),
        "agent rules rules.json: rules[1] (pattern 'weather') answer: {outputs[get_wether][forecast]}: no call of "
        "get_wether here (did you mean get_weather?); the fields here: {transcript}, {earlier[N]}, {previous}, "
        "{output[KEY]}, {outputs[get_weather][KEY]}",
    ),
    (
        "rules.toml",
        '[[rules]]\npattern = "hi"\nsay = "Hello again, {earlier[first]}."\n',
        "agent rules rules.toml: rules[0] (pattern 'hi') say: {earlier[first]}: {earlier} takes a turn's number: "
        "{earlier[0]} is the first",
    ),
    (
        "rules.toml",
        '[[rules]]\npattern = "hi"\nsay = "It is {output}."\n',
        "agent rules rules.toml: rules[0] (pattern 'hi') say: unknown field {output}; the fields here: "
        "{transcript}, {earlier[N]}, {previous}",
    ),
    (
        "rules.toml",
        'not_heard = "What was {transcript}?"\n',
        "agent rules rules.toml: not_heard: unknown field {transcript}; the fields here: {earlier[N]}, {previous}",
    ),
    (
        "rules.toml",
        '[[rules]]\npattern = "hi"\nsay = "a { brace"\n',
        "agent rules rules.toml: rules[0] (pattern 'hi') say: a lone brace in 'a { brace' (expected '}' before end "
        "of string); write {{ or }} for the character",
    ),
    (
        "rules.toml",
        '[[rules]]\npattern = "hi"\nsay = "{transcript!r}"\n',
        "agent rules rules.toml: rules[0] (pattern 'hi') say: {transcript!r}: a value is said as words; leave out "
        "the !r",
    ),
    (
        "rules.toml",
        '[[rules]]\npattern = "hi"\nanswer = "Done."\n',
        "agent rules rules.toml.rules.0: an answer is said after a call's output: this rule has no call",
    ),
    (
        "turns.toml",
        '[[turns]]\ntext = "You said {transcript}."\n',
        "scenario turns.toml: turns[0].text: unknown field {transcript}; the fields here: {user_text}, "
        "{earlier[N]}, {previous}",
    ),
    (
        "turns.toml",
        '[[turns]]\ntext = "One."\n[[turns]]\n  [[turns.calls]]\n  name = "get_weather"\n'
        '  [turns.after_tools]\n  text = "It is {outptu[forecast]}."\n',
        "scenario turns.toml: turns[1].after_tools.text: unknown field {outptu[forecast]} (did you mean output?); "
        "the fields here: {output[KEY]}, {outputs[get_weather][KEY]}",
    ),
    (
        "turns.toml",
        '[[turns]]\n  [turns.mcp]\n  server_label = "docs"\n  name = "search"\n'
        '  after = { text = "The docs say {output[text]}." }\n',
        "scenario turns.toml: turns[0].mcp.after.text: {output[text]}: {output} is text and takes no [key]",
    ),
]


@pytest.mark.parametrize(("name", "contents", "error"), BAD_FILES)
def test_a_template_with_a_field_that_is_not_there_fails_when_the_file_loads(
    tmp_path: Path, name: str, contents: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(contents)
    with pytest.raises(ConfigError) as raised:
        (AgentResponder if name.startswith("rules") else ScenarioResponder).from_file(path)
    assert str(raised.value) == error


def test_the_templates_shipped_and_in_the_fixtures_load() -> None:
    root = Path(__file__).resolve().parents[1]
    from voiceclient.speech.agent import responder_for

    files = [*root.glob("fixtures/scenarios/*.toml"), *root.glob("voiceclient/assets/*.toml")]
    assert len(files) > 10
    for path in files:
        assert responder_for(path) is not None


# (template, values, said); None: `Unfilled` (the responder says what the tools returned instead)
FILLS: list[tuple[str, dict[str, Any], str | None]] = [
    ("{output[city]} is {output[forecast]}.", {"output": {"city": "Paris", "forecast": "sunny"}}, "Paris is sunny."),
    ("{outputs[get_weather][forecast]}", {"outputs": {"get_weather": {"forecast": "rain"}}}, "rain"),
    ("It says {output}.", {"output": "ok"}, "It says ok."),
    (
        "It says {output}.",
        {"output": {"city": "Paris", "temperature_c": 22}},
        "It says city: Paris, temperature c: 22.",
    ),
    ("{output[open]}, {output[stops]}", {"output": {"open": True, "stops": ["A", "B"]}}, "yes, A, B"),
    ("{output[t]:.1f} degrees", {"output": {"t": 21.46}}, "21.5 degrees"),
    ("{output[t]:.1f} degrees", {"output": {"t": "warm"}}, "warm degrees"),  # a spec that does not fit
    ("{output[forecast]}", {"output": {"error": "ValueError: no city"}}, None),  # a tool that failed
    ("{output[forecast]}", {"output": {}}, None),  # returned {}
    ("{output[forecast]}", {"output": {"forecast": None}}, None),  # returned null
    ("{output}", {"output": ""}, None),  # returned nothing
    ("{output[forecast]}", {"output": "sunny"}, None),  # text where the template wants an object
    ("{outputs[other][x]}", {"output": 1, "outputs": {"get_weather": 1}}, None),
    ("First: {earlier[0]}; last: {previous}.", {"earlier": [], "previous": ""}, "First: ; last: ."),
    ("First: {earlier[2]}.", {"earlier": ["a", "b"], "previous": "b"}, "First: ."),
    ("Going to {city}.", {"city": ""}, "Going to ."),  # a group that took no part in the match
    ("a stray { brace", {}, "a stray  brace"),  # (not loadable from a file; never said as a brace)
    ("{{literal}}", {}, "{literal}"),
]


@pytest.mark.parametrize(("template", "values", "said"), FILLS)
def test_a_value_that_is_not_there_is_never_said_as_a_brace(
    template: str, values: dict[str, Any], said: str | None
) -> None:
    if said is None:
        with pytest.raises(Unfilled):
            fill(template, values)
    else:
        assert fill(template, values) == said


@pytest.mark.parametrize(
    ("outputs", "said"),
    [
        (
            [("get_weather", '{"error": "LookupError: no city Atlantis"}')],
            "get weather failed: LookupError: no city Atlantis.",
        ),
        (
            [("send_email", '{"error": "the user did not approve this call", "reason": "not now"}')],
            "send email failed: the user did not approve this call (not now).",
        ),
        ([("get_weather", "{}")], "get weather returned nothing."),
        ([("get_weather", "")], "get weather returned nothing."),
        (
            [("get_weather", '{"city": "Paris"}'), ("ping", "pong")],
            "get weather returned city: Paris. ping returned pong.",
        ),
    ],
)
def test_what_a_voice_agent_says_instead(outputs: list[tuple[str, str]], said: str) -> None:
    assert tool_report(outputs) == said


def test_the_agent_answers_with_the_turn_that_asked_and_says_a_failure_as_one() -> None:
    """The answer also has the pattern's groups and what was heard; a failed tool is said as failed, even when
    the answer needs none of its values; no answer: what the tool returned."""
    spec = AgentSpec.model_validate(
        {
            "rules": [
                {
                    "pattern": "remind me to (?P<task>[a-z ]+?)( at (?P<time>\\d+))?$",
                    "call": {"name": "add_reminder", "arguments": {"task": "{task}", "at": "{time}"}},
                    "answer": "I will remind you to {task}.",
                },
                {"pattern": "weather", "call": {"name": "get_weather"}},
            ]
        }
    )
    agent = AgentResponder(spec)
    asked = agent.plan(
        TurnContext(
            user_audio=np.ones(10, np.int16), transcript="remind me to buy milk", function_tools={"add_reminder"}
        )
    )
    call = asked.outputs[0]
    assert isinstance(call, FunctionCall) and json.loads(call.arguments) == {"task": "buy milk", "at": ""}

    def answer(output: str, origin: Any = call.origin, name: str = "add_reminder") -> str:
        plan = agent.plan(TurnContext(function_outputs=[(name, output)], origin=origin))
        assert isinstance(plan.outputs[0], Speech)
        return plan.outputs[0].text

    assert answer('{"ok": true}') == "I will remind you to buy milk."
    assert answer('{"error": "TimeoutError: the calendar is down"}') == (
        "add reminder failed: TimeoutError: the calendar is down."
    )
    weather = agent.plan(
        TurnContext(user_audio=np.ones(10, np.int16), transcript="weather?", function_tools={"get_weather"})
    ).outputs[0]
    assert isinstance(weather, FunctionCall)
    assert answer('{"forecast": "rain"}', weather.origin, "get_weather") == "get weather returned forecast: rain."


def test_the_default_reply_says_a_tools_output_in_words() -> None:
    """The echo server answers a function output in words too, never with the JSON's braces."""
    ctx = TurnContext(function_outputs=[("get_weather", json.dumps({"city": "Paris", "temperature_c": 22}))])
    (speech,) = EchoResponder().plan(ctx).outputs
    assert speech.text == "get weather returned city: Paris, temperature c: 22."
