"""RTSP push: the encoded streams sent to upstream media servers (ANNOUNCE/SETUP/RECORD)."""
