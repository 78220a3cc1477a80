"""TLS for the gateway: server and upstream contexts (OCPP cipher suites, TLS 1.2+, no compression) and the
security-profile-3 client certificate checks.

Profile 3 verification, step by step (each failure has a stable reason name):

1. ``no_client_certificate``: the station presented none (OpenSSL already refused certificates that do not chain
   to ``tls.client_ca`` or are outside their validity period, during the TLS handshake);
2. ``certificate_unreadable``: the leaf cannot be parsed;
3. ``certificate_expired``: outside its validity period (checked again on the gateway clock);
4. ``certificate_revoked``: its serial number is on the configured CRL (the CRL must be signed by the CA);
5. ``certificate_operator_mismatch``: subject O differs from ``tls.operator``;
6. ``certificate_cn_mismatch``: subject CN differs from the station's configured serial number;
7. ``identity_not_serial``: with ``identity_must_equal_serial``, the URL identity differs from the serial number.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from chargeguard.errors import ConfigError
from chargeguard.sources.ocpp.gateway.config import TlsConfig, UpstreamConfig


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The listener's context: TLS 1.2+, OCPP suites, no compression, client certificates requested if a CA is set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, config.ciphers)
    try:
        ctx.load_cert_chain(config.cert, config.key)
        if config.client_ca is not None:
            ctx.load_verify_locations(cafile=config.client_ca)
            ctx.verify_mode = (
                ssl.CERT_OPTIONAL
            )  # profile 2 stations present none; profile 3 is enforced per station
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load gateway TLS material: {exc}") from exc
    return ctx


def upstream_context(config: UpstreamConfig) -> ssl.SSLContext | None:
    """Context for the CSMS leg (None for ws://): verifies the CSMS, presents our client certificate if set."""
    if not config.url.startswith("wss://"):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    _harden(ctx, None)
    try:
        if config.ca is not None:
            ctx.load_verify_locations(cafile=config.ca)
        if config.client_cert is not None:
            ctx.load_cert_chain(config.client_cert, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load upstream TLS material: {exc}") from exc
    return ctx


def _harden(ctx: ssl.SSLContext, ciphers: str | None) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if ciphers:
        try:
            ctx.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"no usable TLS 1.2 cipher suite in {ciphers!r}") from exc


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    """Outcome of the profile-3 checks: ``reason`` is None when the certificate is acceptable."""

    reason: str | None
    common_name: str | None = None
    organization: str | None = None


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


class ClientCertificateVerifier:
    """Checks a station's (already chain-verified) leaf certificate against the station's configuration."""

    def __init__(self, operator: str, crl_path: Path | None, ca_path: Path | None) -> None:
        self._operator = operator
        self._revoked: frozenset[int] = frozenset()
        if crl_path is not None:
            self._revoked = _load_crl(crl_path, ca_path)

    def check(
        self,
        der: bytes | None,
        *,
        serial_number: str,
        identity: str,
        identity_must_equal_serial: bool,
        now: dt.datetime,
    ) -> CertificateCheck:
        if not der:
            return CertificateCheck("no_client_certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return CertificateCheck("certificate_unreadable")
        cn = _name_attr(cert.subject, NameOID.COMMON_NAME)
        org = _name_attr(cert.subject, NameOID.ORGANIZATION_NAME)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return CertificateCheck("certificate_expired", cn, org)
        if cert.serial_number in self._revoked:
            return CertificateCheck("certificate_revoked", cn, org)
        if org != self._operator:
            return CertificateCheck("certificate_operator_mismatch", cn, org)
        if cn != serial_number:
            return CertificateCheck("certificate_cn_mismatch", cn, org)
        if identity_must_equal_serial and identity != serial_number:
            return CertificateCheck("identity_not_serial", cn, org)
        return CertificateCheck(None, cn, org)


def _load_crl(crl_path: Path, ca_path: Path | None) -> frozenset[int]:
    try:
        data = crl_path.read_bytes()
        crl = (
            x509.load_pem_x509_crl(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_crl(data)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CRL {crl_path}: {exc}") from exc
    if ca_path is not None:
        try:
            cas = x509.load_pem_x509_certificates(ca_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read client CA {ca_path}: {exc}") from exc
        if not any(_crl_signed_by(crl, ca) for ca in cas):
            raise ConfigError(f"CRL {crl_path} is not signed by the configured client CA")
    return frozenset(r.serial_number for r in crl)


def _crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    if crl.issuer != ca.subject:
        return False
    return crl.is_signature_valid(key)
