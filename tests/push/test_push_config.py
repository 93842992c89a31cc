"""``[[push]]`` tables in the config file: both spellings, and one clear line for bad values."""

import tomllib

import pytest

from rotordream import config


def test_array_of_tables_and_the_targets_key_agree():
    text = '[[push]]\nurl = "rtsp://u:p@127.0.0.1:8554/a"\n[[push]]\n' \
           'url = "rtsps://h/b"\nstream = "stream2"\ntransport = "udp"\nenabled = false\n'
    a = config.from_dict(tomllib.loads(text)).push.targets
    b = config.from_dict(tomllib.loads(
        '[push]\ntargets = [{url = "rtsp://u:p@127.0.0.1:8554/a"}, {url = "rtsps://h/b", '
        'stream = "stream2", transport = "udp", enabled = false}]\n')).push.targets
    assert a == b and len(a) == 2
    assert (a[1].stream, a[1].transport, a[1].enabled, a[0].tls_verify) == \
        ("stream2", "udp", False, True)
    assert config.from_dict({}).push.targets == ()


@pytest.mark.parametrize("table, message", [
    ({"url": "http://x/y"}, "[[push]] #1 url: expected rtsp://"),
    ({"stream": "stream1"}, "[[push]] #1 url"),
    ({"url": "rtsp://h/x", "stream": "s3"}, "stream = 's3'"),
    ({"url": "rtsp://h/x", "transport": "sctp"}, "transport = 'sctp'"),
    ({"url": "rtsp://h/x", "enabled": "yes"}, "enabled = 'yes': expected true or false"),
    ({"url": "rtsp://h/x", "colour": 1}, "colour: unknown key"),
])
def test_bad_push_tables_name_the_key(table, message):
    with pytest.raises(config.ConfigError) as e:
        config.from_dict({"push": [table]})
    assert message in str(e.value) and "\n" not in str(e.value)
