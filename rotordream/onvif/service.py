"""The ONVIF part's long-lived service (for makeService).

Request handling lives in the /onvif web resource; nothing runs between
requests yet, so there is no service to start. The events broker (pull-point
subscriptions that expire) is the part that will need one.
"""


def make_onvif_service(ctx):
    """No background service is needed by Device, Media, PTZ and Imaging: None."""
    return None
