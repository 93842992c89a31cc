"""The shared fakes honour the interfaces they stand in for."""

import io

import av
import pytest
from twisted.internet.interfaces import (IMulticastTransport, IReactorFromThreads,
                                         IReactorMulticast, IReactorTime, IReactorUDP,
                                         IUDPTransport)
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from rotordream.auth.service import AuthError, AuthService
from rotordream.config import from_dict
from rotordream.interfaces import (ICredentialChecker, IMotorController, IRecorder,
                                   IStreamHub, IStreamServer, IVideoPipeline, IWebRTC)
from rotordream.media.pipeline import VideoPipeline
from rotordream.media.sources import TestPatternSource as PatternSource
from rotordream.recording.recorder import Recorder
from rotordream.recording.store import RecordingStore
from rotordream.rtsp.server import RTSPServer
from rotordream.state import CameraState
from rotordream.testing import (FakeAuth, FakeMotor, FakeMulticastTransport, FakePipeline,
                                FakeUDPPort, FakeUDPReactor, ImmediateReactor, SyncThreadPool,
                                ThreadClock)
from rotordream.webrtc.sessions import WebRTCService


def test_fake_and_real_pipeline_provide_the_interface():
    assert verifyObject(IVideoPipeline, FakePipeline())
    assert verifyObject(IVideoPipeline, VideoPipeline(None, CameraState(), PatternSource(), None))
    for hubs in (FakePipeline().hubs, VideoPipeline(None, CameraState(), PatternSource(),
                                                      None).hubs):
        assert all(verifyObject(IStreamHub, hub) for hub in hubs.values())


def test_fake_snapshot_is_a_real_jpeg():
    pipeline = FakePipeline()
    jpeg = pipeline.snapshot().result
    assert pipeline.snap(pipeline.take_snap()).result == jpeg
    with pytest.raises(KeyError):
        pipeline.snap("snap-99")
    with av.open(io.BytesIO(jpeg)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (1, 1)


def test_fake_motor_provides_the_interface_and_arrives_at_once():
    motor = FakeMotor()
    assert verifyObject(IMotorController, motor)
    motor.absolute_move(pan=30.0)
    motor.relative_move(tilt=-10.0)
    assert (motor.pan, motor.tilt) == (30.0, -10.0)
    token = motor.set_preset("door")
    motor.home()
    assert motor.status()["pan"] == 0.0
    motor.goto_preset(token)
    assert (motor.pan, motor.tilt) == (30.0, -10.0)
    motor.remove_preset(token)
    with pytest.raises(KeyError):
        motor.goto_preset(token)


def test_reactors_provide_time_and_threads():
    for reactor in (ImmediateReactor(), ThreadClock()):
        assert verifyObject(IReactorTime, reactor)
        assert verifyObject(IReactorFromThreads, reactor)
    reactor = ImmediateReactor()
    fired = []
    reactor.callLater(5, fired.append, "late")
    reactor.callFromThread(fired.append, "now")
    reactor.advance(5)
    assert fired == ["now", "late"] and reactor.getDelayedCalls() == []
    pool, results = SyncThreadPool(), []
    pool.callInThreadWithCallback(lambda ok, value: results.append((ok, value)), sum, (1, 2))
    assert results == [(True, 3)]


def test_udp_reactor_and_ports_provide_twisted_interfaces():
    reactor = FakeUDPReactor()
    for interface in (IReactorTime, IReactorUDP, IReactorMulticast):
        assert verifyObject(interface, reactor)
    port = reactor.listenUDP(50000, DatagramProtocol())
    group = reactor.listenMulticast(3702, DatagramProtocol())
    assert verifyObject(IUDPTransport, port) and isinstance(port, FakeUDPPort)
    assert verifyObject(IMulticastTransport, group)
    assert isinstance(group, FakeMulticastTransport) and reactor.ports == [port, group]


def test_fake_udp_port_refuses_what_sendto_refuses():
    port = FakeUDPPort(50000)
    port.write(b"rtp", ("192.0.2.1", 5004))
    assert port.sent == [(b"rtp", ("192.0.2.1", 5004))]
    with pytest.raises(OverflowError):
        port.write(b"rtp", ("192.0.2.1", 70000))
    with pytest.raises(ValueError):
        port.write(b"rtp", ("not-an-address", 5004))
    assert port.getHost().port == 50000


def test_fake_auth_provides_the_checks_a_control_session_makes(tmp_path):
    auth = FakeAuth()
    assert verifyObject(ICredentialChecker, auth)
    cfg = from_dict({"server": {"state_dir": str(tmp_path)},
                     "auth": {"secret_file": str(tmp_path) + ".key"}})
    assert verifyObject(ICredentialChecker, AuthService(cfg, str(tmp_path), Clock()))
    assert auth.check_password("op", "secret").role == "operator"
    assert auth.check_token("tok").role == "admin"
    with pytest.raises(AuthError):
        auth.check_password("op", "wrong")
    with pytest.raises(AuthError):
        auth.check_token("other")


def test_parts_provide_the_interfaces_the_web_tree_reads(tmp_path):
    cfg = from_dict({"server": {"state_dir": str(tmp_path)}})
    clock, hubs = Clock(), FakePipeline().hubs
    recorder = Recorder(clock, CameraState(), hubs["stream1"],
                        RecordingStore(str(tmp_path / "rec"), 0, 0), SyncThreadPool(), 60)
    assert verifyObject(IRecorder, recorder)
    assert verifyObject(IWebRTC, WebRTCService(hubs, clock, cfg.webrtc))
    assert verifyObject(IStreamServer, RTSPServer(cfg.rtsp, hubs, None, clock))
