"""How /api/ptz answers a motor controller's refusals."""

import pytest
from twisted.python.failure import Failure

from rotordream.motor import MotorError
from rotordream.web.api.base import ApiError
from rotordream.web.api.ptz import motor_refusal


@pytest.mark.parametrize("motor_code, status, code", [
    ("DISCONNECTED", 503, "MOTOR_NOT_CONNECTED"),
    ("TIMEOUT", 503, "MOTOR_NOT_CONNECTED"),
    ("BUSY", 429, "RATE_LIMITED"),
    ("LIMIT", 409, "CONFLICT"),
    ("FAULT", 409, "CONFLICT"),
])
def test_motor_refusals_become_envelopes_with_the_controllers_code(motor_code, status, code):
    with pytest.raises(ApiError) as caught:
        motor_refusal(Failure(MotorError(motor_code, "refused")))
    e = caught.value
    assert (e.status, e.code, e.extra["motor_code"]) == (status, code, motor_code)
    assert e.message == "motor: refused"
    assert (e.headers.get(b"retry-after") == b"1") == (motor_code == "BUSY")


def test_other_failures_pass_through():
    failure = Failure(ValueError("not a motor error"))
    with pytest.raises(ValueError):
        motor_refusal(failure)
