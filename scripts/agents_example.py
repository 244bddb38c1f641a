"""OpenAI's Agents SDK over WebRTC: a `RealtimeRunner` whose model is voiceclient's `WebRTCModel`. A triage agent
hands the user to a weather agent, whose tool the SDK runs; the first question is a WAV, the second is typed,
the answers go to a WAV.

    voiceclient serve --port 8000 --scenario fixtures/scenarios/agents.toml &
    python scripts/agents_example.py --base-url http://127.0.0.1:8000/v1 --input question.wav --output answer.wav

Against the real service: `--base-url https://api.openai.com/v1` (or OPENAI_BASE_URL) and OPENAI_API_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner

from voiceclient import WavSource
from voiceclient.agents import WebRTCModel


@function_tool
def get_weather(city: str) -> dict[str, str]:
    """The weather in a city."""
    return {"city": city, "forecast": "sunny"}


weather = RealtimeAgent(name="weather", instructions="Answer questions about the weather.", tools=[get_weather])
triage = RealtimeAgent(name="triage", instructions="Send weather questions to the weather desk.", handoffs=[weather])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "sk-local"))
    parser.add_argument("--input", required=True, help="a WAV (any rate) said as the user's turns")
    parser.add_argument("--output", required=True, help="where the answers' audio goes (24 kHz WAV)")
    parser.add_argument("--seconds", type=float, default=30.0, help="give up after this long")
    args = parser.parse_args()

    model = WebRTCModel(source=WavSource(args.input), output_wav=args.output)
    runner = RealtimeRunner(triage, model=model)
    session = await runner.run(model_config={"url": args.base_url, "api_key": args.api_key})
    async with session:

        async def conversation() -> None:
            history: list = []
            asked = False
            async for event in session:
                if event.type == "history_updated":
                    history = event.history
                elif event.type == "handoff":
                    print(f"handoff: {event.from_agent.name} -> {event.to_agent.name}")
                elif event.type == "tool_end":
                    print(f"tool: {event.tool.name} -> {event.output}")
                elif event.type == "agent_end":
                    last = next((i for i in reversed(history) if getattr(i, "role", None) == "assistant"), None)
                    said = " ".join(
                        c.transcript for c in (last.content if last else []) if getattr(c, "transcript", None)
                    )
                    print(f"{event.agent.name}: {said}")
                    if "Paris" in said:
                        return  # the weather agent has answered: done
                    if event.agent.name == "weather" and not asked:  # handed over: ask it, typed this time
                        asked = True
                        await session.send_message("What is the weather in Paris?")

        await asyncio.wait_for(conversation(), args.seconds)
        await model.call.run_until_idle(idle_seconds=1.0)  # the last answer has played to the end


if __name__ == "__main__":
    asyncio.run(main())
