"""WebRTC through aiortc: one peer wrapper for offerer and answerer, and the immediate jitter buffer."""
