"""The shared fakes honour the interfaces they stand in for."""

import io

import av
from zope.interface.verify import verifyObject

from rotordream.interfaces import IVideoPipeline
from rotordream.media.pipeline import VideoPipeline
from rotordream.media.sources import TestPatternSource as PatternSource
from rotordream.state import CameraState
from rotordream.testing import FakePipeline


def test_fake_and_real_pipeline_provide_the_interface():
    assert verifyObject(IVideoPipeline, FakePipeline())
    assert verifyObject(IVideoPipeline, VideoPipeline(None, CameraState(), PatternSource(), None))


def test_fake_snapshot_is_a_real_jpeg():
    jpeg = FakePipeline().snapshot().result
    with av.open(io.BytesIO(jpeg)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (1, 1)
