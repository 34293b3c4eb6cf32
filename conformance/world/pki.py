"""The run's own PKI: a test CA, server certificates for the public names, the ``test.client`` certificate.

Everything is generated in memory for each run (EC P-256 keys, short validity) and written to files
only when asked. Private keys never show in ``repr``/``str`` output, so a log line or an assertion
message cannot leak them; they leave this module only through :meth:`Credential.private_key_pem`.

Certificate profile (what Envoy, nginx, curl/OpenSSL in strict mode and cryptography's verifier accept):

- CA: basicConstraints CA:TRUE (critical, pathlen 0), keyUsage keyCertSign+cRLSign (critical), SKI.
- Leaves: basicConstraints CA:FALSE, keyUsage digitalSignature (critical), one EKU (serverAuth or
  clientAuth), subjectAltName DNS names, SKI, and AKI pointing at the CA.
- Validity starts a few minutes in the past (tolerates clock skew between this host and the cluster)
  and lasts days, not years.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Name of the client certificate the seeds use (secret ``istio-system/test.client``).
CLIENT_NAME = "test.client"
ORGANIZATION = "egress-conformance"
BACKDATE = timedelta(minutes=5)
LIFETIME = timedelta(days=2)


class PKIError(ValueError):
    pass


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True, repr=False)
class Credential:
    """A certificate with its private key. The key is reachable only through ``private_key_pem()``."""

    certificate: x509.Certificate
    _private_key: ec.EllipticCurvePrivateKey = field(compare=False)

    @property
    def common_name(self) -> str:
        attributes = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attributes[0].value) if attributes else ""

    @property
    def dns_names(self) -> tuple[str, ...]:
        try:
            san = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ()
        return tuple(san.value.get_values_for_type(x509.DNSName))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, hex (public data, safe to log)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def private_key_pem(self) -> str:
        """Unencrypted PKCS#8 PEM: handle with care, never log it."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def __repr__(self) -> str:
        return (
            f"Credential(cn={self.common_name!r}, dns_names={list(self.dns_names)!r}, "
            f"not_after={self.certificate.not_valid_after_utc.isoformat()}, "
            f"sha256={self.fingerprint[:16]}...)"
        )

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would carry the key to wherever the bytes go (e.g. xdist workers, caches).
        raise TypeError("a Credential holds a private key and is not picklable")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _issue_ca(common_name: str, not_before: datetime, not_after: datetime) -> Credential:
    key = _new_key()
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credential(certificate, key)


def _issue_leaf(
    ca: Credential,
    common_name: str,
    dns_names: Sequence[str],
    usage: x509.ObjectIdentifier,
    not_before: datetime,
    not_after: datetime,
) -> Credential:
    key = _new_key()
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca._private_key, hashes.SHA256())
    )
    return Credential(certificate, key)


@dataclass(frozen=True, repr=False)
class RunPKI:
    """The CA, the named server credentials and the client credential of one run."""

    ca: Credential
    servers: Mapping[str, Credential]
    client: Credential

    @classmethod
    def generate(
        cls,
        server_names: Mapping[str, Sequence[str]],
        client_name: str = CLIENT_NAME,
        *,
        now: datetime | None = None,
        lifetime: timedelta = LIFETIME,
    ) -> RunPKI:
        """Issue a fresh CA, one server certificate per entry of ``server_names`` (label -> DNS names,
        the first name is the CN) and a client certificate whose CN and only DNS SAN is ``client_name``.
        """
        if not server_names:
            raise PKIError("at least one server certificate is needed")
        empty = sorted(label for label, names in server_names.items() if not names)
        if empty:
            raise PKIError(f"server certificate(s) {', '.join(empty)} need at least one DNS name")
        started = now or datetime.now(UTC)
        not_before = started - BACKDATE
        not_after = started + lifetime
        run_id = os.urandom(4).hex()
        # The CA outlives its leaves by a day so a chain never expires at its top first.
        ca = _issue_ca(f"{ORGANIZATION} test CA {run_id}", not_before, not_after + timedelta(days=1))
        servers = {
            label: _issue_leaf(ca, names[0], names, ExtendedKeyUsageOID.SERVER_AUTH, not_before, not_after)
            for label, names in server_names.items()
        }
        client = _issue_leaf(ca, client_name, [client_name], ExtendedKeyUsageOID.CLIENT_AUTH, not_before, not_after)
        return cls(ca=ca, servers=MappingProxyType(servers), client=client)

    def server(self, label: str) -> Credential:
        try:
            return self.servers[label]
        except KeyError:
            raise PKIError(f"no server certificate labelled {label!r}; have {sorted(self.servers)}") from None

    def server_for_host(self, host: str) -> Credential:
        """The server credential whose SANs name ``host`` exactly."""
        for credential in self.servers.values():
            if host.lower() in (n.lower() for n in credential.dns_names):
                return credential
        raise PKIError(f"no server certificate covers {host!r}")

    def hosts(self) -> tuple[str, ...]:
        """Every DNS name some server certificate covers."""
        return tuple(n for c in self.servers.values() for n in c.dns_names)

    def ca_pem(self) -> str:
        return self.ca.certificate_pem()

    def fingerprint(self) -> str:
        """Identifies this PKI (the CA fingerprint): changes whenever certificates are regenerated."""
        return self.ca.fingerprint

    def write(self, directory: Path) -> dict[str, Path]:
        """Write PEM files (keys mode 0600): ``ca.crt``, ``<label>.crt/.key``, ``client.crt/.key``."""
        directory.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {"ca.crt": _write(directory / "ca.crt", self.ca_pem(), secret=False)}
        pairs: Iterable[tuple[str, Credential]] = [*self.servers.items(), ("client", self.client)]
        for label, credential in pairs:
            crt, key = directory / f"{label}.crt", directory / f"{label}.key"
            written[crt.name] = _write(crt, credential.certificate_pem(), secret=False)
            written[key.name] = _write(key, credential.private_key_pem(), secret=True)
        return written

    def __repr__(self) -> str:
        return f"RunPKI(ca={self.ca!r}, servers={dict(self.servers)!r}, client={self.client!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a RunPKI holds private keys and is not picklable")


def _write(path: Path, text: str, *, secret: bool) -> Path:
    mode = 0o600 if secret else 0o644
    # Create with the final mode so a key is never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.chmod(path, mode)
    return path
