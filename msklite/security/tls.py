"""A local certificate authority and broker certificates, made on first use in the data
directory (`<data_dir>/tls/`), and the server TLS contexts built from them.

The CA (`ca.pem`, EC P-256, ten years) is kept across restarts, so a client that trusts it
keeps trusting the cluster; broker certificates are issued again at every start (an EC key
costs about a millisecond) with SANs for every name a client may dial: the advertised host,
`localhost` and `127.0.0.1`. `cryptography` is imported only here, and this module only when
a TLS listener is enabled: a plaintext cluster's cold start does not pay for it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
_YEAR = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: str  # the CA certificate a client points at (ssl.ca.location, cafile)


def tls_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "tls")


def load_or_create_ca(data_dir: str) -> CertificateAuthority:
    directory = tls_dir(data_dir)
    cert_path = os.path.join(directory, CA_FILE)
    key_path = os.path.join(directory, CA_KEY_FILE)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not the EC key msklite writes")
        return CertificateAuthority(cert, key, cert_path)
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msklite local CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + 10 * _YEAR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    # The key first, private from its creation: a CA certificate without its key is useless.
    _write(key_path, key.private_bytes(*_PRIVATE), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return CertificateAuthority(cert, key, cert_path)


def issue_broker_certificate(
    ca: CertificateAuthority, data_dir: str, node_id: int, hosts: list[str]
) -> tuple[str, str]:
    """A server certificate for broker `node_id` valid for `hosts` (names or addresses),
    written beside the CA; returns (certificate path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"b-{node_id}")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _YEAR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    directory = tls_dir(data_dir)
    cert_path = os.path.join(directory, f"broker-{node_id}.pem")
    key_path = os.path.join(directory, f"broker-{node_id}-key.pem")
    _write(key_path, key.private_bytes(*_PRIVATE), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue_client_certificate(ca: CertificateAuthority, data_dir: str, name: str) -> tuple[str, str]:
    """A client certificate with subject `CN=name` (the mTLS principal is then
    `User:CN=name`), written beside the CA; returns (certificate path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _YEAR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory = os.path.join(tls_dir(data_dir), "clients")
    os.makedirs(directory, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    cert_path = os.path.join(directory, f"{stem}.pem")
    key_path = os.path.join(directory, f"{stem}-key.pem")
    _write(key_path, key.private_bytes(*_PRIVATE), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(
    ca: CertificateAuthority, data_dir: str, node_id: int, hosts: list[str], client_auth: bool
) -> ssl.SSLContext:
    """Broker `node_id`'s TLS server context (TLS 1.2+, as MSK), with a fresh certificate for
    `hosts`; `client_auth`: a client must present a certificate msklite's CA signed (mTLS)."""
    cert_path, key_path = issue_broker_certificate(ca, data_dir, node_id, hosts)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    if client_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ca.path)
    return ctx


_PRIVATE = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: str, data: bytes, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
