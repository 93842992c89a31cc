"""The key of the recoverable password copies lives outside the state directory."""

import json
import os
import stat

import pytest
from cryptography.fernet import Fernet
from twisted.logger import globalLogPublisher

from rotordream.auth.secretkey import KeyUnusable, load_key
from rotordream.auth.users import UserStore
from tests.support.auth import reveals_password

PASSWORD = "first-password"


@pytest.fixture
def logged():
    """Every log event's formatted text while the test runs."""
    from twisted.logger import formatEvent
    lines = []

    def observe(event):
        lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


@pytest.fixture(autouse=True)
def no_env_password(monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)


def store(tmp_path, key_file=None, keep_copies=True):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    key = str(tmp_path / "secret.key") if key_file is None else key_file
    return UserStore(str(state), PASSWORD, key_file=key, keep_copies=keep_copies)


def test_the_key_is_made_0600_outside_and_the_state_dir_alone_reveals_nothing(tmp_path):
    users = store(tmp_path)
    users.add("viewer1", "viewer-password", "viewer")
    key = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert users.secret("admin") == PASSWORD and users.secret("viewer1") == "viewer-password"
    assert not reveals_password(tmp_path / "state", [PASSWORD, "viewer-password"])
    # The key file is what opens them (the check above would see it if it were there).
    assert Fernet(key.read_bytes().strip()).decrypt(
        json.loads((tmp_path / "state" / "users.json").read_text())["users"]["admin"]["secret"]
        .encode()) == PASSWORD.encode()
    # The next start uses the same key.
    assert store(tmp_path).secret("viewer1") == "viewer-password"


@pytest.mark.parametrize("case", ["inside", "no-directory", "world-readable", "damaged",
                                  "unset"])
def test_an_unusable_key_keeps_no_copy_and_says_why_once(tmp_path, logged, case):
    state = tmp_path / "state"
    state.mkdir()
    path = {"inside": str(state / "secret.key"),
            "no-directory": str(tmp_path / "missing" / "secret.key"),
            "world-readable": str(tmp_path / "secret.key"),
            "damaged": str(tmp_path / "secret.key"),
            "unset": ""}[case]
    if case == "world-readable":
        (tmp_path / "secret.key").write_bytes(Fernet.generate_key())
        os.chmod(tmp_path / "secret.key", 0o644)
    if case == "damaged":
        (tmp_path / "secret.key").write_bytes(b"not a key")
        os.chmod(tmp_path / "secret.key", 0o600)
    with pytest.raises(KeyUnusable):
        load_key(path, str(state))
    users = store(tmp_path, key_file=path)
    users.add("viewer1", "viewer-password", "viewer")
    assert users.secret("admin") is None and users.verify("admin", PASSWORD)
    assert "PasswordDigest is unavailable" in users.copies_refused
    assert not os.path.exists(state / "secret.key")
    assert not any(rec.get("secret") for rec in
                   json.loads((state / "users.json").read_text())["users"].values())
    why = [line for line in logged if "PasswordDigest is off" in line]
    assert len(why) == 1 and "\n" not in why[0]


def test_password_digest_off_keeps_no_copy_and_drops_old_ones(tmp_path):
    users = store(tmp_path)
    assert users.secret("admin") == PASSWORD
    users = store(tmp_path, keep_copies=False)
    assert users.secret("admin") is None and "password_digest = false" in users.copies_refused
    users.add("viewer1", "viewer-password", "viewer")
    data = json.loads((tmp_path / "state" / "users.json").read_text())
    assert not any(rec.get("secret") for rec in data["users"].values())
    # HTTP Digest's HA1 values are kept: hashes of name, realm and password, no copy.
    assert data["users"]["viewer1"]["ha1_sha256"] and users.verify("viewer1", "viewer-password")


def test_a_key_unusable_for_now_leaves_the_copies_for_when_it_is_back(tmp_path):
    users = store(tmp_path)
    users.add("viewer1", "viewer-password", "viewer")
    key = tmp_path / "secret.key"
    os.chmod(key, 0o644)
    assert store(tmp_path).secret("viewer1") is None
    os.chmod(key, 0o600)
    assert store(tmp_path).secret("viewer1") == "viewer-password"


def _legacy_state_dir(tmp_path):
    """A state dir as earlier versions left it: copies under <state_dir>/onvif-key."""
    users = store(tmp_path, key_file="")
    users.add("viewer1", "viewer-password", "viewer")
    legacy = Fernet.generate_key()
    (tmp_path / "state" / "onvif-key").write_bytes(legacy + b"\n")
    data = json.loads((tmp_path / "state" / "users.json").read_text())
    for name, password in (("admin", PASSWORD), ("viewer1", "viewer-password")):
        data["users"][name]["secret"] = Fernet(legacy).encrypt(password.encode()).decode()
    (tmp_path / "state" / "users.json").write_text(json.dumps(data))
    assert reveals_password(tmp_path / "state", [PASSWORD])  # the defect being fixed


def test_an_old_state_dir_key_moves_the_copies_under_the_key_file_and_is_deleted(tmp_path):
    _legacy_state_dir(tmp_path)
    users = store(tmp_path)
    assert not os.path.exists(tmp_path / "state" / "onvif-key")
    assert users.secret("admin") == PASSWORD and users.secret("viewer1") == "viewer-password"
    assert not reveals_password(tmp_path / "state", [PASSWORD, "viewer-password"])
    assert store(tmp_path).secret("viewer1") == "viewer-password"


@pytest.mark.parametrize("keep_copies, key_file", [(False, None), (True, "")])
def test_an_old_state_dir_key_without_a_new_one_drops_the_copies(tmp_path, keep_copies,
                                                                  key_file):
    _legacy_state_dir(tmp_path)
    users = store(tmp_path, key_file=key_file, keep_copies=keep_copies)
    assert not os.path.exists(tmp_path / "state" / "onvif-key")
    assert users.secret("admin") is None and users.verify("viewer1", "viewer-password")
    assert not reveals_password(tmp_path / "state", [PASSWORD, "viewer-password"])
