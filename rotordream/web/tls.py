"""TLS for HTTPS and RTSPS: the configured certificate, or a self-signed one made once."""

import datetime
import ipaddress
import os
import socket

from twisted.internet import ssl
from twisted.logger import Logger

from rotordream.fsutil import atomic_write

log = Logger()

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"


def self_signed(cert_path, key_path, hostname=None):
    """Write a self-signed certificate and its key (mode 0600) unless both already exist."""
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hostname = hostname or socket.gethostname()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RotorDream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(hostname), x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("made a self-signed TLS certificate in {path}", path=cert_path)
    return True


def make_tls_context_factory(ctx):
    """Server TLS options from [tls] certificate/key, else the state dir's self-signed pair."""
    cfg = ctx.config
    cert_path, key_path = cfg.tls.certificate, cfg.tls.key
    if not cert_path:
        cert_path = os.path.join(cfg.server.state_dir, CERT_FILE)
        key_path = os.path.join(cfg.server.state_dir, KEY_FILE)
        self_signed(cert_path, key_path)
    try:
        with open(cert_path, "rb") as f:
            cert = f.read()
        with open(key_path or cert_path, "rb") as f:
            key = f.read()
        return ssl.PrivateCertificate.loadPEM(cert + b"\n" + key).options()
    except (OSError, ValueError) as e:
        raise SystemExit("rotordream: [tls] certificate %s / key %s cannot be used: %s"
                         % (cert_path, key_path, e))
