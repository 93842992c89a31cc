"""ONVIF and browsers: a foreign page cannot post SOAP with the browser's saved credentials."""

from lxml import etree

from tests.support.soapkit import envelope, fault_codes
from tests.web.test_rest_live import curl

# GetUsers needs admin credentials: a 200 shows the saved ones were used.
GET_USERS = envelope("<tds:GetUsers/>")


def post(daemon, *headers):
    args = ["-u", "admin:" + daemon.admin_password, "-X", "POST",
            "-H", "Content-Type: text/plain", "--data-binary", GET_USERS.decode()]
    for h in headers:
        args += ["-H", h]
    return curl(*(args + [daemon.http + "/onvif/device_service"]))


def test_a_foreign_page_cannot_post_soap_with_saved_credentials(daemon):
    code, body = post(daemon, "Origin: http://evil.example")
    assert code == 403, body
    code_value, subcodes = fault_codes(etree.fromstring(body.encode()))
    assert code_value.endswith("Sender") and any("NotAuthorized" in s for s in subcodes)
    code, body = post(daemon, "Referer: http://evil.example/page.html")
    assert code == 403, body


def test_nvrs_and_the_cameras_own_pages_keep_working(daemon):
    for headers in ((), ("Origin: %s" % daemon.http,)):
        code, body = post(daemon, *headers)
        assert code == 200, (headers, body)
        assert b"admin" in body.encode() and b"GetUsersResponse" in body.encode()
