"""The JSON wire's audio codec (voiceclient.audio.wire): formats normalised, 24 kHz <-> PCM16 and G.711 in chunks,
with the resampler's state carried across them, and the decoder's refusals."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.audio.wire import FormatSpec, WireDecoder, WireEncoder, WireFormat, wire_format

pytestmark = pytest.mark.timeout(30)
FORMATS: list[dict[str, Any]] = [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}]


def chunks(pcm: np.ndarray) -> list[np.ndarray]:
    """Uneven 20 ms-ish pieces, as a microphone or a burst of deltas gives them."""
    return np.array_split(pcm, [480 * i + (i % 3) * 7 for i in range(1, pcm.size // 480)])


@pytest.mark.parametrize(
    "fmt, expected",
    [
        (None, WireFormat("audio/pcm", 24000)),
        ({"type": "audio/pcm", "rate": 24000}, WireFormat("audio/pcm", 24000)),
        ({"type": "audio/pcmu"}, WireFormat("audio/pcmu", 8000)),
        ({"type": "audio/pcma"}, WireFormat("audio/pcma", 8000)),
        ("audio/pcmu", WireFormat("audio/pcmu", 8000)),
        ("pcm16", WireFormat("audio/pcm", 24000)),
        ("g711_ulaw", WireFormat("audio/pcmu", 8000)),
        ("g711_alaw", WireFormat("audio/pcma", 8000)),
    ],
)
def test_formats_and_legacy_names_are_normalised(fmt: FormatSpec, expected: WireFormat) -> None:
    assert wire_format(fmt) == expected


def test_legacy_names_encode_as_the_new_ones() -> None:
    pcm = tone(440, 0.3, API_RATE)
    for old, new in (("pcm16", "audio/pcm"), ("g711_ulaw", "audio/pcmu"), ("g711_alaw", "audio/pcma")):
        assert WireEncoder().encode(pcm, old) == WireEncoder().encode(pcm, {"type": new})


def test_pcm16_round_trip_in_chunks_is_exact() -> None:
    pcm = tone(440, 1.0, API_RATE)
    encoder, decoder = WireEncoder(), WireDecoder()
    wire = [encoder.encode_base64(c, FORMATS[0]) for c in chunks(pcm)]
    assert base64.b64decode(wire[0]) == chunks(pcm)[0].astype("<i2").tobytes()
    out = np.concatenate([decoder.decode(w, FORMATS[0]) for w in wire])
    np.testing.assert_array_equal(out, pcm)


@pytest.mark.parametrize("fmt", FORMATS[1:], ids=lambda f: f["type"])
def test_g711_round_trip_in_chunks_keeps_the_tone(fmt: dict[str, str]) -> None:
    pcm = tone(440, 1.0, API_RATE)
    encoder, decoder = WireEncoder(), WireDecoder()
    wire = [encoder.encode(c, fmt) for c in chunks(pcm)]
    assert sum(map(len, wire)) == pytest.approx(pcm.size / 3, abs=40)  # one byte a sample at 8 kHz
    out = np.concatenate([decoder.decode(base64.b64encode(w).decode(), fmt) for w in wire])
    assert out.size == pytest.approx(pcm.size, abs=120)
    assert abs(dominant_frequency(out, API_RATE) - 440) < 5
    level = np.sqrt(np.mean(out[2400:-2400].astype(float) ** 2)) / np.sqrt(np.mean(pcm.astype(float) ** 2))
    assert 0.9 < level < 1.1


@pytest.mark.parametrize("fmt", FORMATS[1:], ids=lambda f: f["type"])
def test_the_resampler_state_carries_across_chunks(fmt: dict[str, str]) -> None:
    pcm = tone(440, 1.0, API_RATE)
    whole = WireEncoder().encode(pcm, fmt)
    encoder = WireEncoder()
    assert b"".join(encoder.encode(c, fmt) for c in chunks(pcm)) == whole
    decoder = WireDecoder()
    pieces = [whole[i : i + 160] for i in range(0, len(whole), 160)]
    chunked = np.concatenate([decoder.decode_bytes(p, fmt) for p in pieces])
    np.testing.assert_array_equal(chunked, WireDecoder().decode_bytes(whole, fmt))


def test_a_new_format_starts_a_new_stream() -> None:
    decoder = WireDecoder()
    decoder.decode_bytes(WireEncoder().encode(tone(440, 0.2, API_RATE), "g711_ulaw"), "g711_ulaw")
    pcm = tone(300, 0.2, API_RATE)
    np.testing.assert_array_equal(decoder.decode_bytes(pcm.astype("<i2").tobytes(), None), pcm)
    fresh = WireEncoder().encode(pcm, "g711_alaw")
    assert decoder.decode_bytes(fresh, "g711_alaw").size == WireDecoder().decode_bytes(fresh, "g711_alaw").size


def test_the_decoder_refuses_what_is_not_audio_in_the_format() -> None:
    with pytest.raises(ValueError, match=r"^not valid base64$"):
        WireDecoder().decode("not base64!", FORMATS[0])
    with pytest.raises(ValueError, match=r"^PCM16 audio must be a whole number of 2-byte samples$"):
        WireDecoder().decode(base64.b64encode(b"abc").decode(), FORMATS[0])
    WireDecoder().decode(base64.b64encode(b"abc").decode(), FORMATS[1])  # G.711: any byte count is whole samples
    assert wire_format(FORMATS[1]).unpack(b"abc").size == 3


def test_a_lenient_decoder_takes_what_a_server_sent_as_far_as_it_goes() -> None:
    decoder = WireDecoder(lenient=True)
    odd = base64.b64encode(np.array([1, 2], "<i2").tobytes() + b"x").decode()
    np.testing.assert_array_equal(decoder.decode(odd, FORMATS[0]), [1, 2])
    np.testing.assert_array_equal(decoder.decode(odd[:4] + "\n" + odd[4:], FORMATS[0]), [1, 2])
    with pytest.raises(ValueError, match=r"^not valid base64$"):
        decoder.decode("abc", FORMATS[0])  # bad padding is still refused
