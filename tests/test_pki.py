"""The run's PKI: chains verify with cryptography's X.509 verifier, the profile is right, keys stay hidden."""

from __future__ import annotations

import copy
import pickle
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from conformance.world.external import PUBLIC_HOSTS, SERVER_CERTIFICATES, new_pki
from conformance.world.pki import BACKDATE, CLIENT_NAME, PKIError, RunPKI


@pytest.fixture(scope="module")
def pki() -> RunPKI:
    return new_pki()


@pytest.fixture(scope="module")
def foreign() -> RunPKI:
    """A second, unrelated PKI: its certificates must not pass for the first one's."""
    return new_pki()


def _builder(pki: RunPKI) -> PolicyBuilder:
    return PolicyBuilder().store(Store([pki.ca.certificate])).time(datetime.now(UTC))


@pytest.mark.parametrize("host", [h.name for h in PUBLIC_HOSTS])
def test_server_certificate_verifies_for_each_public_name(pki: RunPKI, host: str) -> None:
    leaf = pki.server_for_host(host).certificate
    chain = _builder(pki).build_server_verifier(DNSName(host)).verify(leaf, [])
    assert chain[0] == leaf
    assert chain[-1] == pki.ca.certificate


@pytest.mark.parametrize("label", list(SERVER_CERTIFICATES))
@pytest.mark.parametrize("foreign_name", ["example.com", "evil.aliyun.com", "test.com.evil.org"])
def test_server_certificate_fails_for_a_foreign_name(pki: RunPKI, label: str, foreign_name: str) -> None:
    verifier = _builder(pki).build_server_verifier(DNSName(foreign_name))
    with pytest.raises(VerificationError):
        verifier.verify(pki.server(label).certificate, [])


def test_ingress_certificate_does_not_cover_the_origins(pki: RunPKI) -> None:
    verifier = _builder(pki).build_server_verifier(DNSName("aliyun.com"))
    with pytest.raises(VerificationError):
        verifier.verify(pki.server("mtls-ingress").certificate, [])


def test_server_certificate_from_another_ca_fails(pki: RunPKI, foreign: RunPKI) -> None:
    verifier = _builder(pki).build_server_verifier(DNSName("test.com"))
    with pytest.raises(VerificationError):
        verifier.verify(foreign.server("mtls-ingress").certificate, [])


def test_client_certificate_verifies_as_a_client(pki: RunPKI) -> None:
    verified = _builder(pki).build_client_verifier().verify(pki.client.certificate, [])
    assert verified.chain[-1] == pki.ca.certificate
    assert verified.subjects == [x509.DNSName(CLIENT_NAME)]


def test_client_certificate_from_another_ca_fails(pki: RunPKI, foreign: RunPKI) -> None:
    with pytest.raises(VerificationError):
        _builder(pki).build_client_verifier().verify(foreign.client.certificate, [])


def test_client_certificate_is_not_a_server_certificate(pki: RunPKI) -> None:
    # EKU clientAuth only: a server verifier must refuse it even for its own name.
    with pytest.raises(VerificationError):
        _builder(pki).build_server_verifier(DNSName(CLIENT_NAME)).verify(pki.client.certificate, [])


def test_server_certificate_is_not_a_client_certificate(pki: RunPKI) -> None:
    with pytest.raises(VerificationError):
        _builder(pki).build_client_verifier().verify(pki.server("origins").certificate, [])


def test_ca_profile(pki: RunPKI) -> None:
    ca = pki.ca.certificate
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert ca.issuer == ca.subject


@pytest.mark.parametrize(
    "which, eku",
    [
        ("origins", ExtendedKeyUsageOID.SERVER_AUTH),
        ("mtls-ingress", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ],
)
def test_leaf_profile(pki: RunPKI, which: str, eku: x509.ObjectIdentifier) -> None:
    credential = pki.client if which == "client" else pki.server(which)
    cert = credential.certificate
    assert cert.issuer == pki.ca.certificate.subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [eku]


def test_client_certificate_names_test_client(pki: RunPKI) -> None:
    # The mTLS ingress's RBAC principal matches this DNS SAN (Envoy checks URI SANs, then DNS SANs).
    assert pki.client.common_name == CLIENT_NAME
    assert pki.client.dns_names == (CLIENT_NAME,)
    san = pki.client.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == []


def test_validity_starts_in_the_past_and_is_short() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    pki = RunPKI.generate({"x": ("x.example",)}, now=now)
    for cert in (pki.server("x").certificate, pki.client.certificate):
        assert cert.not_valid_before_utc == now - BACKDATE
        assert timedelta(hours=1) < cert.not_valid_after_utc - now <= timedelta(days=7)
    assert pki.ca.certificate.not_valid_after_utc >= pki.client.certificate.not_valid_after_utc


def test_expired_chain_is_refused(pki: RunPKI) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    verifier = PolicyBuilder().store(Store([pki.ca.certificate])).time(later).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(pki.client.certificate, [])


def test_every_public_host_is_covered_by_a_server_certificate(pki: RunPKI) -> None:
    assert sorted(pki.hosts()) == sorted(h.name for h in PUBLIC_HOSTS)
    for host in PUBLIC_HOSTS:
        assert host.name in pki.server(host.frontend.value).dns_names


def test_unknown_lookups_raise(pki: RunPKI) -> None:
    with pytest.raises(PKIError):
        pki.server("nope")
    with pytest.raises(PKIError):
        pki.server_for_host("example.com")
    with pytest.raises(PKIError):
        RunPKI.generate({})
    with pytest.raises(PKIError):
        RunPKI.generate({"empty": ()})


def test_private_keys_never_show_in_repr_or_str(pki: RunPKI) -> None:
    texts = [repr(pki), str(pki), repr(pki.client), str(pki.ca), f"{pki.server('origins')}", repr(pki.servers)]
    keys = [
        pki.ca.private_key_pem(),
        pki.client.private_key_pem(),
        *(c.private_key_pem() for c in pki.servers.values()),
    ]
    for text in texts:
        assert "PRIVATE KEY" not in text
        for key in keys:
            body = "".join(key.splitlines()[1:-1])
            # no chunk of the key's base64 body leaks either
            assert body[:32] not in text.replace("\n", "")
    assert "test.client" in repr(pki.client)  # the repr stays useful


def test_credentials_refuse_pickling_and_copying(pki: RunPKI) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(pki.client)
    with pytest.raises(TypeError):
        pickle.dumps(pki)
    with pytest.raises(TypeError):
        copy.deepcopy(pki.client)


def test_pem_round_trip(pki: RunPKI) -> None:
    cert = x509.load_pem_x509_certificate(pki.client.certificate_pem().encode())
    assert cert == pki.client.certificate
    assert pki.client.private_key_pem().startswith("-----BEGIN PRIVATE KEY-----")


def test_write_creates_files_with_private_key_mode(pki: RunPKI, tmp_path: Path) -> None:
    written = pki.write(tmp_path / "pki")
    assert set(written) == {
        "ca.crt",
        "origins.crt",
        "origins.key",
        "mtls-ingress.crt",
        "mtls-ingress.key",
        "client.crt",
        "client.key",
    }
    for name, path in written.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    assert written["ca.crt"].read_text() == pki.ca_pem()


def test_each_run_gets_a_new_ca(pki: RunPKI, foreign: RunPKI) -> None:
    assert pki.fingerprint() != foreign.fingerprint()
