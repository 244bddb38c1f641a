"""What steers and limits one response: its instructions, tools, tool choice and token cap (the `response.create`'s
own, else the session's), and the token estimate that the cap and `usage` are both held to.

No model counts tokens here, so they are estimated: about four characters of text a token, ten tokens a second of
audio. `max_output_tokens` cuts an answer word by word where the next word would go over, text and audio alike,
and the response ends `incomplete` ([SDK] `RealtimeResponseStatus`: reason `max_output_tokens`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.server.conversation import word_offsets
from voiceclient.server.dialect import ResponseRequest
from voiceclient.server.responders import check_tool_choice

TOKENS_PER_CHARACTER = 1 / 4  # the text estimate: about four characters a token (usage, max_output_tokens)
AUDIO_TOKENS_PER_SECOND = 10  # the audio estimate (usage, max_output_tokens)


def text_tokens(text: str) -> float:
    return len(text) * TOKENS_PER_CHARACTER


@dataclass
class Steering:
    """What steers one response: the session's settings, or the `response.create`'s for this response only."""

    instructions: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    max_output_tokens: float = float("inf")


def steering_for(session: dict[str, Any], params: ResponseRequest | None) -> Steering:
    """The response's instructions, tools, tool choice and token cap: the request's, else the session's. Raises
    ProtocolError for a tool choice the tools do not allow (the request's own, or the session's with the request's
    tools)."""
    tools = params.tools if params and params.tools is not None else session.get("tools") or []
    choice = params.tool_choice if params and params.tool_choice is not None else session.get("tool_choice")
    param = "response.tool_choice" if params and params.tool_choice is not None else "session.tool_choice"
    check_tool_choice(choice, tools, param)
    cap = params.max_output_tokens if params and params.max_output_tokens else session.get("max_output_tokens")
    instructions = params.instructions if params and params.instructions is not None else session.get("instructions")
    return Steering(
        instructions=instructions or "",
        tools=list(tools),
        tool_choice=choice or "auto",
        max_output_tokens=float("inf") if cap in (None, "inf") else float(cap),
    )


@dataclass
class TokenBudget:
    """A response's output tokens so far against its cap. Once a part or a call would go over, `spent` is set and
    the response ends `incomplete`."""

    cap: float = float("inf")
    tokens: float = 0.0  # text and audio
    text_tokens: float = 0.0
    spent: bool = False

    def take_call(self, name: str, arguments: str) -> bool:
        """A function call is made whole or not at all: whether it fits (and is counted)."""
        cost = text_tokens(name + arguments)
        if self.tokens + cost > self.cap:
            self.spent = True
            return False
        self.tokens += cost
        self.text_tokens += cost
        return True

    def take_part(self, text: str, pcm24: np.ndarray | None) -> tuple[str, np.ndarray | None]:
        """The part (its words and their 24 kHz audio) as far as the cap lets it go: word by word, each costing its
        text tokens and the audio it spans; cut where the next word would go over, text and audio alike (the
        transcript is what was said up to the cut)."""
        samples = 0 if pcm24 is None else pcm24.size
        per_sample = AUDIO_TOKENS_PER_SECOND / API_RATE
        offsets = word_offsets(text) if text else []
        if not offsets and samples:
            offsets = [(0, "")]
        length = max(1, len(text))
        kept_chars, kept_samples = 0, 0
        for i, (_, word) in enumerate(offsets):
            end_char = offsets[i + 1][0] if i + 1 < len(offsets) else len(text)
            end_sample = samples if i + 1 == len(offsets) else samples * end_char // length
            cost = text_tokens(word) + (end_sample - kept_samples) * per_sample
            if self.tokens + cost > self.cap:
                self.spent = True
                break
            self.tokens += cost
            self.text_tokens += text_tokens(word)
            kept_chars, kept_samples = end_char, end_sample
        if not self.spent:
            return text, pcm24
        return text[:kept_chars], None if pcm24 is None else pcm24[:kept_samples]


def usage(
    budget: TokenBudget, audio_out_seconds: float, audio_in_seconds: float, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """A response's `usage`, by the same estimate the cap is held to: output text as counted by its budget (the
    words said, a call's name and arguments), audio at 10 tokens a second; input, the conversation's items as
    JSON and the input audio."""
    text = int(budget.text_tokens)
    audio_out = int(audio_out_seconds * AUDIO_TOKENS_PER_SECOND)
    audio_in = int(audio_in_seconds * AUDIO_TOKENS_PER_SECOND)
    text_in = sum(len(json.dumps(it)) // 4 for it in items) // 2
    return {
        "total_tokens": text + audio_out + audio_in + text_in,
        "input_tokens": audio_in + text_in,
        "output_tokens": text + audio_out,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text, "audio_tokens": audio_out},
    }
