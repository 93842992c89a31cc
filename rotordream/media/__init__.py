"""Capture, processing, encoding and the stream hub (fan-out)."""
