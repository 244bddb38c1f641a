"""The official openai SDK talking to `voiceclient serve` over a WebSocket session: one spoken turn in, the
answer's audio and transcript out. The same code talks to the real service with the real base URL and key.

    voiceclient serve --port 8000 &
    python scripts/websocket_example.py --base-url http://127.0.0.1:8000/v1
        --input fixtures/hello.wav --output answer.wav
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import wave

import numpy as np
from openai import AsyncOpenAI

from voiceclient.audio.sources import load_audio

RATE = 24_000  # audio/pcm: 16-bit mono at 24 kHz, the session's default format


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="sk-local")
    parser.add_argument("--model", default="gpt-realtime")
    parser.add_argument("--input", required=True, help="a WAV (any rate) said as the user's turn")
    parser.add_argument("--output", required=True, help="where the answer's audio goes (24 kHz WAV)")
    args = parser.parse_args()

    speech = load_audio(args.input, RATE)
    client = AsyncOpenAI(base_url=args.base_url, api_key=args.api_key)  # http:// becomes ws:// for realtime
    async with client.realtime.connect(model=args.model) as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
            }
        )
        # The microphone: 100 ms appends, then a second of silence so the server VAD ends the turn.
        audio = np.concatenate([speech, np.zeros(RATE, np.int16)])
        for i in range(0, audio.size, RATE // 10):
            await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + RATE // 10].tobytes()).decode())
        answer = bytearray()
        async for event in conn:
            if event.type == "response.output_audio.delta":
                answer.extend(base64.b64decode(event.delta))
            elif event.type == "response.output_audio_transcript.done":
                print(f"assistant: {event.transcript}")
            elif event.type == "error":
                print(f"error: {event.error.message}")
            elif event.type == "response.done":
                break
    await client.close()
    with wave.open(args.output, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(answer))
    print(f"{len(answer) / 2 / RATE:.2f} s of answer audio in {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
