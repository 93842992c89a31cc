"""The source supervisor's retry backoff on a task.Clock, and the settings handed to capture."""

import dataclasses

import pytest
from twisted.internet.task import Clock

from rotordream.auth.roles import Principal
from rotordream.media.capture import CaptureSettings, SettingsMailbox
from rotordream.media.sources import NoSignalSource, SourceError
from rotordream.media.supervisor import LIVE, RETRY_MAX, RETRY_MIN, WAITING, RetryBackoff, \
    SourceSupervisor
from rotordream.state import CameraState

OPERATOR = Principal("op", "operator")


def test_backoff_doubles_up_to_the_maximum_and_resets_on_success():
    clock = Clock()
    b = RetryBackoff(clock)
    b.opened(False)
    assert b.state == WAITING and not b.due()
    clock.advance(RETRY_MIN)
    assert b.due()
    delays = []
    for _ in range(7):
        b.retried(False)
        delays.append(b.retry_at - clock.seconds())
        clock.advance(delays[-1] - 0.5)
        assert not b.due()
        clock.advance(0.5)
        assert b.due()
    assert delays == [2.0, 4.0, 8.0, 16.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]
    b.retried(True)
    assert b.state == LIVE and not b.due() and b.delay == RETRY_MIN
    # A source lost while reading is tried again after the minimum.
    b.lost()
    clock.advance(RETRY_MIN)
    assert b.due()


class FlakySource:
    """Fails to open while ``broken``; fails one read when ``fail_read``."""

    name = "flaky"
    paced = False

    def __init__(self):
        self.broken = True
        self.fail_read = False
        self.opens = 0
        self.closed = 0

    def open(self, width, height, fps):
        self.opens += 1
        if self.broken:
            raise SourceError("no device")

    def read(self, number, wall):
        if self.fail_read:
            self.fail_read = False
            raise SourceError("unplugged")
        return ("frame", number)

    def close(self):
        self.closed += 1


def test_supervisor_shows_the_card_and_retries_on_the_clock():
    clock, source, signals = Clock(), FlakySource(), []
    sup = SourceSupervisor(source, clock, on_signal=signals.append)
    sup.open(64, 48, 10)
    assert isinstance(sup.active, NoSignalSource) and signals == [False] and sup.failures == 1
    assert not sup.retry_if_due() and source.opens == 1      # not yet
    clock.advance(RETRY_MIN)
    assert not sup.retry_if_due() and source.opens == 2      # tried, still broken
    clock.advance(RETRY_MIN)
    assert not sup.retry_if_due() and source.opens == 2      # backoff doubled
    source.broken = False
    clock.advance(RETRY_MIN)
    assert sup.retry_if_due() and sup.live and signals == [False, True]
    assert sup.read(1, 0.0) == ("frame", 1)
    source.fail_read = True
    assert sup.read(2, 0.0) is None and not sup.live and signals[-1] is False
    clock.advance(RETRY_MIN)
    assert sup.retry_if_due() and sup.live
    sup.close()
    assert source.closed >= 1


def test_capture_gets_frozen_settings_only_when_they_change():
    state = CameraState()
    mailbox = SettingsMailbox(CaptureSettings.from_state(state))
    first = mailbox.take()
    assert (first.stream1.width, first.stream1.height) == (1920, 1080)
    assert mailbox.take() is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.stream1 = None
    state.set({"brightness": 70, "stream2-fps": 10}, OPERATOR)
    mailbox.put(CaptureSettings.from_state(state))
    new = mailbox.take()
    assert new.image.brightness == 70 and new.stream2.fps == 10
    assert first.image.brightness == 50  # what the thread had is untouched
