"""HLS (Low-Latency and classic) packaged in memory from the encoded streams, never re-encoded."""
