"""A throwaway TLS identity for loopback servers whose clients insist on ``wss://``.

google-genai always dials ``wss://``, so the Gemini fake must speak TLS. One self-signed
certificate for 127.0.0.1 (and ``localhost``) is generated per process (EC P-256: fast) and
the client context trusts exactly that certificate and nothing else, so a test can never
reach a real host by accident.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_HOST = "127.0.0.1"
_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class _Identity:
    cert_pem: bytes
    key_pem: bytes


@lru_cache(maxsize=1)
def _identity() -> _Identity:
    """Generate the key pair and certificate once per process (a few ms, but still once)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "livekit-ext loopback")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + _VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(_HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return _Identity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def server_context() -> ssl.SSLContext:
    """A server context presenting the loopback certificate.

    ``load_cert_chain`` only reads files, so the PEMs go to a private temporary directory
    for the duration of that call and are deleted right after.
    """
    identity = _identity()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="livekit-ext-tls-") as tmp:
        cert_file = Path(tmp, "cert.pem")
        key_file = Path(tmp, "key.pem")
        cert_file.write_bytes(identity.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(identity.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def client_context() -> ssl.SSLContext:
    """A client context that trusts the loopback certificate and no other (no system CAs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the peer and its hostname
    context.load_verify_locations(cadata=_identity().cert_pem.decode("ascii"))
    return context


def loopback_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a TLS server on 127.0.0.1."""
    return server_context(), client_context()
