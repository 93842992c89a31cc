"""The reloader checks the whole new configuration before any part sees it."""

import dataclasses

import pytest
from twisted.logger import globalLogPublisher

from rotordream import config as configmod
from rotordream.listener import ListenError
from rotordream.reload import LiveConfig, Reloader, changed_keys


def make(**sections):
    """A Config with some keys changed: make(http={"rate_limit": 5})."""
    return configmod.from_dict({name: dict(values) for name, values in sections.items()})


class FakePort:
    def __init__(self, number):
        self.number = number
        self.stopped = False

    def getHost(self):
        return type("Addr", (), {"port": self.number})()

    def stopListening(self):
        self.stopped = True


class FakeListener:
    """Binds ports in memory; ``refuse`` names endpoints that cannot be bound."""

    def __init__(self, option, refuse=()):
        self.option = option
        self.refuse = set(refuse)
        self.opened = []
        self.moved = []

    def open(self, description):
        if description in self.refuse:
            raise ListenError("cannot listen on %s (--%s): the port is already in use"
                              % (description, self.option))
        port = FakePort(int(description.split(":")[1]))
        self.opened.append(port)
        return port

    def move_to(self, description, port):
        self.moved.append((description, port))


@pytest.fixture
def events():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


def reloader_for(new, listeners=None, checks=()):
    live = LiveConfig(make(http={"rate_limit": 3}))
    applied = []
    files = iter(new if isinstance(new, list) else [new])

    def load():
        item = next(files)
        if isinstance(item, Exception):
            raise item
        return item

    r = Reloader(live, load, parts=[("fake", lambda old, cfg: applied.append((old, cfg)))],
                 checks=checks, listeners=listeners)
    return r, live, applied


def test_a_valid_file_is_put_in_force_and_every_part_gets_it():
    new = make(http={"rate_limit": 50})
    r, live, applied = reloader_for(new)
    old = live.current
    assert r.reload() is True
    assert live.http.rate_limit == 50
    assert applied == [(old, new)]
    assert (r.applied, r.failures) == (1, 0)


def test_an_invalid_file_changes_nothing_and_is_counted(events):
    r, live, applied = reloader_for(configmod.ConfigError("[http] rate_limit = 'x': expected "
                                                          "an integer"))
    old = live.current
    assert r.reload() is False
    assert live.current is old and applied == []
    assert (r.applied, r.failures) == (0, 1)
    failed = [e for e in events if e.get("event") == "config_reload_failed"]
    assert len(failed) == 1 and "[http] rate_limit" in failed[0]["error"]


def test_a_failing_check_stops_the_reload_before_any_part():
    def no_dir(cfg):
        raise configmod.ConfigError("[recording] directory = '/x': not a writable directory")
    r, live, applied = reloader_for(make(http={"rate_limit": 9}), checks=[no_dir])
    assert r.reload() is False and applied == [] and live.http.rate_limit == 3


def test_a_moved_listener_is_bound_first_then_serves():
    http = FakeListener("http")
    new = make(server={"http": "tcp:9001"})
    r, live, applied = reloader_for(new, listeners={("server", "http"): http})
    assert r.reload() is True
    assert [p.number for p in http.opened] == [9001]
    assert http.moved == [("tcp:9001", http.opened[0])]


def test_an_endpoint_that_cannot_be_bound_undoes_the_others_and_applies_nothing():
    http, rtsp = FakeListener("http"), FakeListener("rtsp", refuse={"tcp:9554"})
    new = make(server={"http": "tcp:9001", "rtsp": "tcp:9554"})
    r, live, applied = reloader_for(new, listeners={("server", "http"): http,
                                                    ("server", "rtsp"): rtsp})
    assert r.reload() is False
    assert http.opened[0].stopped and http.moved == [] and applied == []
    assert live.server.http == "tcp:80" and r.failures == 1


def test_keys_that_need_a_restart_are_reported_not_hidden(events):
    r, _, _ = reloader_for(make(http={"rate_limit": 3}, video={"threads": 4}))
    assert r.reload() is True
    restart = [e for e in events if e.get("event") == "config_reload"
               and e.get("applied") is False]
    assert [e["key"] for e in restart] == ["video.threads"]
    assert restart[0]["reason"] == "restart needed"
    from rotordream.logs import format_line
    assert 'msg="video.threads changed: needs a restart"' in format_line(restart[0])


def test_a_part_that_raises_does_not_stop_the_others(events):
    live = LiveConfig(make())
    seen = []

    def broken(old, new):
        raise RuntimeError("boom")

    r = Reloader(live, lambda: make(http={"rate_limit": 7}),
                 parts=[("broken", broken)])
    r.add("next", lambda old, new: seen.append(new.http.rate_limit))
    assert r.reload() is True and seen == [7]
    failed = [e for e in events if e.get("part") == "broken"]
    assert failed and failed[0]["applied"] is False and "log_failure" in failed[0]


def test_changed_keys_lists_section_and_key():
    a, b = make(), make(http={"rate_limit": 1}, log={"levels": {"rtsp": "debug"}})
    assert changed_keys(a, b) == [("http", "rate_limit"), ("log", "levels")]
    assert changed_keys(a, dataclasses.replace(a)) == []
