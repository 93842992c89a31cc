"""Packet-level checks with aiortsp: real-time RTP timestamps, SR after PLAY, keep-alive."""

import asyncio
import concurrent.futures
import time

import pytest

from tests.conftest import require_module


def run(coro):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


@pytest.mark.parametrize("scheme", ["rtsp", "rtspt"])  # rtspt: aiortsp's TCP-interleaved
def test_timestamps_follow_the_clock_and_sessions_keep_alive(daemon, scheme):
    require_module("aiortsp")
    from aiortsp.rtsp.connection import RTSPConnection
    from aiortsp.rtsp.session import RTSPMediaSession
    from aiortsp.transport import transport_for_scheme

    class Probe:
        def __init__(self):
            self.rtp = []
            self.rtcp = []

        def handle_rtp(self, rtp):
            self.rtp.append((time.monotonic(), rtp.ts, rtp.seq))

        def handle_rtcp(self, rtcp):
            self.rtcp.append((time.monotonic(), rtcp))

        def handle_closed(self, error):
            pass

    async def go():
        probe = Probe()
        async with RTSPConnection("127.0.0.1", daemon.rtsp_port) as conn:
            async with transport_for_scheme(scheme)(conn) as transport:
                transport.subscribe(probe)
                async with RTSPMediaSession(conn, daemon.rtsp("stream2"),
                                            transport=transport) as session:
                    started = time.monotonic()
                    await session.play()
                    await asyncio.sleep(2.5)  # receive 2.5 s of live video
                    keep = await session.keep_alive()
                    return probe, started, session.session_keepalive, keep

    probe, started, keepalive, keep = run(go())
    assert keepalive == 54  # 0.9 x our Session timeout=60
    assert keep is not None and keep.status == 200  # GET_PARAMETER listed in Public
    # Live packets after the GOP burst: RTP time advances with wall time (90 kHz).
    live = [p for p in probe.rtp if p[0] - started > 1.0]
    (t0, ts0, _), (t1, ts1, _) = live[0], live[-1]
    assert abs((ts1 - ts0) / 90000.0 - (t1 - t0)) < 0.25
    seqs = [p[2] for p in probe.rtp]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))  # no gap
    # A sender report arrives right after PLAY (not only every 5 s).
    assert probe.rtcp and probe.rtcp[0][0] - started < 1.0
