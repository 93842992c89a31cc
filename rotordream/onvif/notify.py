"""The WS-BaseNotification client: wsnt:Notify requests POSTed to a consumer's URL.

:func:`notify_envelope` builds the request (pure); :func:`agent_post` sends
it with twisted.web's Agent and gives the HTTP status. A Notify subscription
(:class:`rotordream.onvif.subscriptions.PushSubscription`) calls the
broker's ``post``, which is :func:`agent_post`'s function in the daemon and
a recorder in tests.
"""

from io import BytesIO

from rotordream.onvif import soap, topics
from rotordream.onvif.soap import E

NOTIFY_TIMEOUT = 10.0        # seconds for a consumer to take a Notify
NOTIFY_ACTION = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"


def notify_envelope(events, consumer, subscription_address=None):
    """A SOAP 1.2 wsnt:Notify request carrying ``events``."""
    return soap.envelope(soap.SOAP12, [E("wsnt:Notify", [
        topics.notification(e, subscription_address) for e in events])],
        [E("wsa:Action", NOTIFY_ACTION), E("wsa:To", consumer)])


def agent_post(reactor, timeout=NOTIFY_TIMEOUT):
    """``post(url, body)`` with twisted.web's Agent: Deferred of the HTTP status."""
    # Imported here so building envelopes pulls in no twisted.internet.
    from twisted.web.client import Agent, FileBodyProducer, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor, connectTimeout=timeout)
    content_type = ('application/soap+xml; charset=utf-8; action="%s"'
                    % NOTIFY_ACTION).encode()

    def post(url, body):
        d = agent.request(b"POST", url.encode("utf-8"),
                          Headers({b"content-type": [content_type]}),
                          FileBodyProducer(BytesIO(body)))
        d.addCallback(lambda response: readBody(response).addCallback(
            lambda _: response.code))
        d.addTimeout(timeout, reactor)
        return d
    return post
