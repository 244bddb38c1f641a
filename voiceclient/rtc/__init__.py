"""WebRTC through aiortc: one peer wrapper for offerer and answerer, the adaptive jitter buffer, the inline Opus
path, and the emulated network `serve --network` puts on a call."""
