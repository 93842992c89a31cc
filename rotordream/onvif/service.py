"""The ONVIF part's long-lived service (for makeService).

Request handling lives in the /onvif web resource; what runs between
requests is the events broker: pull points and Notify subscriptions that
expire, and the motion detector feeding the motion topic.
"""

from rotordream.onvif.events import make_events_service


def make_onvif_service(ctx):
    """The events broker, started with the daemon so motion is tracked before anyone asks."""
    return make_events_service(ctx)
