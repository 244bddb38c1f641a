from __future__ import annotations

import json

import pytest

from voiceclient import ConfigError, SessionConfig, build_session
from voiceclient.client.settings import ClientSettings

pytestmark = pytest.mark.timeout(10)


def test_only_what_was_set_is_sent_and_explicit_null_is_kept() -> None:
    s = build_session(
        assignments=["audio.input.turn_detection=null", "audio.output.speed=1.2"],
        model="gpt-realtime",
        **{"audio.output.voice": "marin"},  # type: ignore[arg-type]
    )
    assert s.to_wire() == {
        "type": "realtime",
        "model": "gpt-realtime",
        "audio": {"input": {"turn_detection": None}, "output": {"speed": 1.2, "voice": "marin"}},
    }
    assert SessionConfig().to_wire() == {"type": "realtime"}


def test_every_seed_field_round_trips_to_the_wire_shape() -> None:
    full = {
        "type": "realtime",
        "model": "gpt-realtime",
        "output_modalities": ["text"],
        "instructions": "x",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": {"type": "far_field"},
                "transcription": {"model": "whisper-1", "language": "en", "prompt": "p"},
                "turn_detection": {
                    "type": "semantic_vad",
                    "eagerness": "high",
                    "create_response": True,
                    "interrupt_response": False,
                },
            },
            "output": {"format": {"type": "audio/pcmu"}, "speed": 0.25, "voice": {"id": "voice_1"}},
        },
        "include": ["item.input_audio_transcription.logprobs"],
        "max_output_tokens": "inf",
        "prompt": {"id": "pmpt_1", "version": "2", "variables": {"a": "b"}},
        "tool_choice": {"type": "function", "name": "f"},
        "tools": [
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}},
            {
                "type": "mcp",
                "server_label": "s",
                "server_url": "https://x",
                "allowed_tools": ["a"],
                "require_approval": {"never": {"tool_names": ["a"]}},
                "headers": {"X": "y"},
            },
        ],
        "tracing": {"workflow_name": "w"},
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.5, "token_limits": {"post_instructions": 10}},
    }
    assert SessionConfig.model_validate(full).to_wire() == full
    from openai.types.realtime import RealtimeSessionCreateRequest

    RealtimeSessionCreateRequest.model_validate(full)  # the oracle agrees it is the wire shape


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("audio.output.speed=3", "session.audio.output.speed: 3 is not allowed; must be less than or equal to 1.5"),
        (
            "max_output_tokens=0",
            "session.max_output_tokens: 0 is not allowed; must be greater than or equal to 1 or 'inf'",
        ),
        ("max_output_tokens=5000", "session.max_output_tokens: 5000 is not allowed"),
        ('output_modalities=["audio","text"]', 'must be ["audio"] or ["text"], not both'),
        (
            'audio.input.turn_detection={"type":"server_vad","threshold":2}',
            "session.audio.input.turn_detection.threshold: 2 is not allowed",
        ),
        (
            'audio.input.turn_detection={"type":"semantic_vad","eagerness":"fast"}',
            "turn_detection.eagerness: \"fast\" is not allowed; must be 'low', 'medium', 'high' or 'auto'",
        ),
        ('audio.input.turn_detection={"type":"server_vad","idle_timeout_ms":100}', "idle_timeout_ms: 100"),
        ("voice=alloy", "session.voice: unknown field"),
        ('truncation={"type":"retention_ratio","retention_ratio":2}', "session.truncation.retention_ratio: 2"),
        ('tools=[{"type":"mcp","server_label":"x"}]', "an mcp tool with server_url or connector_id"),
        ('audio.input.format="pcm16"', 'session.audio.input.format: "pcm16" is not allowed'),
        ('tool_choice="sometimes"', 'session.tool_choice: "sometimes" is not allowed'),
        ('tracing="on"', 'session.tracing: "on" is not allowed'),
        ('tools=[{"type":"function","name":"a"},{"type":"function","name":"a"}]', "not repeated a"),
    ],
)
def test_bad_values_are_one_line_errors_naming_field_value_and_rule(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_session(assignments=[assignment])
    text = str(info.value)
    assert message in text and "\n" not in text


def test_files_and_flags_merge(tmp_path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[session]\ninstructions = "from file"\n[session.audio.output]\nvoice = "cedar"\n')
    s = build_session(toml, instructions="from flag")
    assert s.to_wire() == {"type": "realtime", "instructions": "from flag", "audio": {"output": {"voice": "cedar"}}}
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"type": "realtime", "max_output_tokens": 100}))
    assert build_session(j).max_output_tokens == 100
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_session(bad)
    with pytest.raises(ConfigError, match="cannot read session file"):
        build_session(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="expected PATH=VALUE"):
        build_session(assignments=["nonsense"])


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    s = ClientSettings.from_env(api_key=None)
    assert s.base_url == "http://127.0.0.1:1/v1" and s.api_key == "sk-env"
    assert "sk-env" not in repr(s)
    assert ClientSettings.from_env(api_key="sk-flag").api_key == "sk-flag"
    with pytest.raises(ConfigError, match="http_timeout"):
        ClientSettings.from_env(http_timeout=-1)
