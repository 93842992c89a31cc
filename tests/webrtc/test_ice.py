"""ICE servers for viewers: TURN REST credentials (coturn use-auth-secret) and WHEP Link headers."""

import base64
import hashlib
import hmac

from rotordream.webrtc.ice import ice_servers, link_headers, turn_credentials


def test_turn_credentials_are_coturns_rest_scheme():
    username, password = turn_credentials("s3cret", 600, 1_800_000_000.7, "cam")
    assert username == "1800000600:cam"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1800000600:cam", hashlib.sha1).digest())
    assert password == expected.decode()
    # Another moment, another pair: credentials expire with their time.
    assert turn_credentials("s3cret", 600, 1_800_000_001)[1] != password


def test_stun_and_turn_urls_are_grouped_and_only_turn_gets_credentials():
    urls = ("stun:stun.example.net", "turn:10.0.0.1:3478?transport=udp", "turns:t.example:5349")
    stun, turn = ice_servers(urls, "k", 60, 1000)
    assert stun == {"urls": ["stun:stun.example.net"]}
    assert turn["urls"] == ["turn:10.0.0.1:3478?transport=udp", "turns:t.example:5349"]
    assert turn["username"] == "1060:rotordream"
    assert (turn["username"], turn["credential"]) == turn_credentials("k", 60, 1000)
    # Without a secret a TURN URL goes out bare; nothing configured, nothing sent.
    assert ice_servers(urls[1:2], "", 60, 1000) == [{"urls": [urls[1]]}]
    assert ice_servers((), "k", 60, 1000) == []


def test_link_headers_carry_each_url_and_its_credentials():
    servers = [{"urls": ["stun:a"]},
               {"urls": ["turn:b"], "username": "1:x", "credential": 'p"w'}]
    assert link_headers(servers) == [
        '<stun:a>; rel="ice-server"',
        '<turn:b>; rel="ice-server"; username="1:x"; credential="p\\"w"; '
        'credential-type="password"']
