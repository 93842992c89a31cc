"""What feeds the ONVIF event broker, and the service that runs it with the daemon.

The camera state (``record``, ``motor-state``, ``motion``, the motor's fault events)
becomes property events on the broker's topics. The assembler makes the broker
(:func:`make_broker`) and puts it in the context; :class:`EventsService` feeds
it from the daemon's start, so motion is tracked before anyone asks, and ends
every subscription at shutdown.
"""

from twisted.application import service

from rotordream.onvif import topics
from rotordream.onvif.broker import Broker
from rotordream.onvif.notify import agent_post
from rotordream.onvif.topics import (MOTION, MOTION_ALARM, MOTOR_FAILURE, PTZ_MOVE,
                                     RECORDING_JOB, RECORDING_STATE)

# Tokens the event sources name; they match the media and PTZ services'.
VIDEO_SOURCE = "video_source"
VIDEO_SOURCE_CONFIG = "video_source_config"
ANALYTICS_CONFIG = "analytics_config"
MOTION_RULE = "cell_motion"
RECORDING_JOB_TOKEN = "record_job"
RECORDING_TOKEN = "recording"
PTZ_CONFIG = "ptz_config"
PTZ_NODE = "ptz_node"


def record_events(value):
    """(topic, source, data) triples for a ``record`` state value."""
    active = value is True   # "paused" writes nothing
    return ((RECORDING_JOB, {"RecordingJobToken": RECORDING_JOB_TOKEN},
             {"State": "Active" if active else "Idle"}),
            (RECORDING_STATE, {"RecordingToken": RECORDING_TOKEN}, {"IsRecording": active}))


def motor_events(value):
    """(topic, source, data) triples for a ``motor-state`` value."""
    return ((PTZ_MOVE, {"PTZConfigurationToken": PTZ_CONFIG},
             {"PanTilt": "MOVING" if value == "moving" else "IDLE"}),
            (MOTOR_FAILURE, {"Token": PTZ_NODE}, {"Failed": value == "fault"}))


def motion_events(moving):
    """(topic, source, data) triples for the motion detector's verdict."""
    return ((MOTION, {"VideoSourceConfigurationToken": VIDEO_SOURCE_CONFIG,
                      "VideoAnalyticsConfigurationToken": ANALYTICS_CONFIG,
                      "Rule": MOTION_RULE}, {"IsMotion": bool(moving)}),
            (MOTION_ALARM, {"Source": VIDEO_SOURCE}, {"State": bool(moving)}))


def attach_sources(broker, ctx):
    """Feed ``broker`` from ``ctx.state`` (record, motor-state, motion, motor faults);
    publish the current values first."""
    state = ctx.state
    has_motor = ctx.motor is not None

    def publish(triples, utc=None):
        for topic, source, data in triples:
            if topic in broker.topics:
                broker.publish(topic, source, data, utc)

    publish(record_events(state.get("record")))
    if has_motor:
        publish(motor_events(state.get("motor-state")))
    publish(motion_events(state.get("motion")))

    def changed(changes, origin):
        if "record" in changes:
            publish(record_events(changes["record"]))
        if "motor-state" in changes and has_motor:
            publish(motor_events(changes["motor-state"]))
        if "motion" in changes:
            publish(motion_events(changes["motion"]))

    def happened(event):
        # The motor service announces a lost controller as an event, too.
        if has_motor and isinstance(event, dict) and event.get("code") == "MOTOR_FAULT":
            publish(((MOTOR_FAILURE, {"Token": PTZ_NODE}, {"Failed": True}),))

    broker.on_stop(state.subscribe(changed))
    broker.on_stop(state.subscribe_events(happened))


def make_broker(config, reactor, has_motor):
    """A broker for this camera (PTZ topics only with a motor); ``config`` is the whole
    config (its ``[onvif]`` section caps the subscriptions)."""
    topic_list = [t for t in topics.TOPICS
                  if has_motor or t not in (PTZ_MOVE, MOTOR_FAILURE)]
    cfg = config.onvif
    return Broker(reactor, cfg.max_subscriptions, agent_post(reactor), topic_list,
                  cfg.max_subscriptions_per_user)


class EventsService(service.Service):
    """Feeds ``ctx.events`` from the camera while the daemon runs (so motion is tracked
    before anyone asks) and ends every subscription at shutdown."""

    name = "onvif-events"

    def __init__(self, ctx):
        self.ctx = ctx

    def startService(self):
        service.Service.startService(self)
        attach_sources(self.ctx.events, self.ctx)

    def stopService(self):
        service.Service.stopService(self)
        self.ctx.events.stop()
