"""The link emulator's rules (tests/support/linkemu.py) on a clock: rate, queue, delay, loss."""

import types

from twisted.internet import task

from tests.support.linkemu import Direction, Link


def make(**settings):
    clock, arrived = task.Clock(), []
    direction = Direction(clock, lambda p: arrived.append((round(clock.seconds(), 6), p)),
                          **settings)
    return clock, direction, arrived


def run(clock, until, step=0.001):
    while clock.seconds() < until - 1e-9:
        clock.advance(step)


def test_unlimited_link_delivers_after_the_delay_in_order():
    clock, link, arrived = make(delay=0.05)
    for i in range(3):
        link.send(b"%d" % i)
    clock.advance(0.049)
    assert arrived == []
    clock.advance(0.001)
    assert [p for _, p in arrived] == [b"0", b"1", b"2"]
    assert link.delivered == 3 and link.dropped == link.lost == 0


def test_rate_spaces_packets_after_the_burst_and_adds_the_delay():
    # 400 kbit/s: a 1000-byte packet takes 20 ms; 2000 bytes of burst go at once.
    clock, link, arrived = make(rate=400_000, delay=0.025, burst=2000, queue=100_000)
    for i in range(5):
        link.send(bytes(1000))
    run(clock, 0.2)
    times = [t for t, _ in arrived]
    assert times == [0.025, 0.025, 0.045, 0.065, 0.085], times


def test_a_full_queue_drops_at_the_tail_and_drains_at_the_rate():
    clock, link, arrived = make(rate=400_000, burst=1000, queue=5000)
    for i in range(10):
        link.send(bytes(1000))
    # One leaves at once (the burst), five wait (5000 bytes), the other four are dropped.
    assert link.dropped == 4 and link.max_queue == 5000
    run(clock, 0.2)
    assert len(arrived) == 6
    # Once the queue has drained, the link takes packets again.
    link.send(bytes(1000))
    run(clock, 0.3)
    assert len(arrived) == 7 and link.dropped == 4


def test_the_long_run_rate_is_the_configured_one():
    clock, link, arrived = make(rate=400_000, burst=3000, queue=1_000_000)
    for i in range(500):          # 500 kB offered at once
        link.send(bytes(1000))
    run(clock, 20, step=0.01)
    last = arrived[-1][0]
    assert abs(500 * 1000 * 8 / last - 400_000) < 5_000, last


def test_random_loss_is_seeded_and_near_its_rate():
    counts = []
    for _ in range(2):
        # A clock that delivers at once: task.Clock sorts its calls on every callLater.
        arrived = []
        now = types.SimpleNamespace(seconds=lambda: 0.0, callLater=lambda d, f, p: f(p))
        link = Direction(now, arrived.append, loss=0.01, seed=7)
        for i in range(20_000):
            link.send(b"%d" % i)
        counts.append((link.lost, arrived[:3]))
    assert counts[0] == counts[1]
    assert 150 <= counts[0][0] <= 250, counts[0][0]


def test_settings_change_at_run_time_and_queued_packets_keep_their_times():
    clock, link, arrived = make(rate=400_000, burst=0, queue=100_000)
    link.send(bytes(1000))          # leaves at 20 ms
    link.configure(rate=None, delay=0.01)
    link.send(bytes(1000))          # no rate now: 10 ms of delay only
    run(clock, 0.1)
    assert [t for t, _ in arrived] == [0.01, 0.02]


def test_a_link_has_two_independent_directions():
    clock, down, up = task.Clock(), [], []
    link = Link(clock, down.append, up.append)
    link.configure(delay=0.02)
    link.configure("down", rate=400_000, loss=0.5)
    assert (link.down.rate, link.up.rate, link.up.loss, link.up.delay) == (400_000, None, 0.0, 0.02)
    link.up.send(b"feedback")
    clock.advance(0.02)
    assert up == [b"feedback"] and down == []
    assert link.counters()["up"]["delivered"] == 1
