"""WebRTC through aiortc: one peer wrapper for offerer and answerer, the adaptive jitter buffer, and the inline Opus path."""
