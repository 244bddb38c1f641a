"""OpenAI's Agents SDK over WebRTC: `WebRTCModel`, a `RealtimeModel` for `RealtimeRunner` (the `agents` extra).

from agents.realtime import RealtimeRunner
from voiceclient.agents import WebRTCModel

runner = RealtimeRunner(agent, model=WebRTCModel(source=WavSource("question.wav"), output_wav="answer.wav"))
"""

from __future__ import annotations

try:
    import agents.realtime  # noqa: F401  (the SDK: pip install 'voiceclient[agents]')
except ImportError as exc:  # pragma: no cover - depends on what is installed
    from voiceclient.errors import ConfigError

    raise ConfigError("voiceclient.agents needs OpenAI's Agents SDK: pip install 'voiceclient[agents]'") from exc

from voiceclient.agents.model import WebRTCModel, base_url_from

__all__ = ["WebRTCModel", "base_url_from"]
