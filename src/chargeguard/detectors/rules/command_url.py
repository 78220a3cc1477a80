"""command.untrusted_url: firmware, diagnostics and log commands that point at untrusted or unsafe locations."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import HostAllowList
from chargeguard.detectors.state import BoundedState
from chargeguard.events import CommandIssued, Event, Finding, Severity, StationBooted

_PLAIN = frozenset({"http", "ftp", "tftp"})
_SECURE = frozenset({"https", "ftps", "sftp"})
_UNSIGNED_FIRMWARE = "UpdateFirmware"
_LOG_ACTIONS = frozenset({"GetDiagnostics", "GetLog"})
# words of vendor names that say nothing about who the vendor is
_GENERIC_WORDS = frozenset(
    {"gmbh", "inc", "ltd", "llc", "the", "and", "corp", "group", "systems", "solutions", "technologies",
     "technology", "energy", "charging", "charge", "power", "mobility", "emobility", "international"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UntrustedUrlConfig:
    """Settings of command.untrusted_url.

    trusted_hosts: the host allow-list: exact hosts or IP addresses (``fw.vendor.example``, ``192.0.2.10``) and
    suffixes (``.vendor.example`` or ``*.vendor.example``, both also covering ``vendor.example``) the operator
    trusts. URLs on them are never flagged except for embedded credentials (plain http/ftp is accepted there).
    Once the list is configured, every other host is flagged high, https included: a valid certificate only
    proves who runs the server, not that the operator trusts it. Matching ignores case, a trailing dot and
    IDNA spelling; a URL, a port or a mid-name wildcard in the list is a ConfigError, not a silent non-match.
    Set it in the settings file::

        [detectors.command-untrusted-url]
        trusted_hosts = ["fw.vendor.example", ".updates.vendor.example"]

    Empty (the default): no allow-list; hosts are learned per purpose (``new_host_after``) and checked against
    the station's vendor (``vendor_hosts``).
    allow_plain_transport: accept http/ftp/tftp (no TLS) on hosts that are otherwise acceptable.
    actions: the commands whose locations are checked.
    new_host_after: without ``trusted_hosts``, once this many locations of one purpose (firmware, or diagnostics
    and logs) have been seen, a host never used before for that purpose is flagged (0 disables the check).
    vendor_hosts: without ``trusted_hosts``, a host name that is neither the station's vendor's (a word of the
    BootNotification vendor name in the host's labels: ``Alfen BV`` -> ``fw.alfen.example``) nor used before
    by this network for the purpose is flagged, from the first command on (no learning period).
    """

    trusted_hosts: tuple[str, ...] = ()
    allow_plain_transport: bool = False
    actions: tuple[str, ...] = (
        "UpdateFirmware",
        "SignedUpdateFirmware",
        "PublishFirmware",
        "GetDiagnostics",
        "GetLog",
    )
    new_host_after: int = 20
    vendor_hosts: bool = True


def _safe_url(parts: SplitResult) -> str:
    """scheme://host[:port]/path - no credentials (already removed), no query or fragment."""
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path[:100]}"


class UntrustedUrl(Detector[UntrustedUrlConfig]):
    """UpdateFirmware / SignedUpdateFirmware / PublishFirmware / GetDiagnostics / GetLog pointing somewhere unsafe.

    Catches: a command URL that carried credentials (``user:password@``; high, medium on a trusted host); when
    ``trusted_hosts`` is configured, any host outside it (high); and, trusted list or not: schemes other than
    http(s)/ftp(s)/sftp/tftp (``file:``, ``smb:``; high), loopback, link-local, cloud-metadata or unspecified
    addresses (high), other IP-literal hosts (medium: no certificate name to check), URLs without a host
    (medium), and plain http/ftp/tftp (medium; high for an OCPP 1.6 UpdateFirmware, whose image is not signed,
    unless ``allow_plain_transport``). Without a trusted list, the detector learns the hosts each purpose
    (firmware; diagnostics and logs) uses, and once ``new_host_after`` locations have been seen, a host never used
    before is medium; and, from the first command on, a host name that is neither the station vendor's nor one
    this network used before for the purpose is medium (the vendor comes from the station's BootNotification).
    One alert per command and location, merging every station it was sent to.

    Why: a firmware location under an attacker's control installs their code (DOMAIN #31; Mennekes
    CVE-2025-22366/22368); diagnostics and logs uploaded to a foreign server leak station secrets and driver data
    (#14); credentials in URLs end up in station logs and captures. OCPP 2.0.1 L01 requires signed firmware;
    1.6 UpdateFirmware is unsigned.

    False positives: vendors that still deliver firmware over plain http from an IP address; list their hosts in
    ``trusted_hosts`` (credentials in the URL are still reported). Operators that serve firmware or collect
    logs on their own servers (not under the vendor's name) get one medium alert per new host, after which the
    host is known; listing the hosts in ``trusted_hosts`` avoids it (and turns every other host high).

    References: OCPP 1.6 §5.19 / §5.7, OCPP 1.6 security whitepaper §6 (SignedUpdateFirmware, GetLog), OCPP 2.0.1
    L01/L02/N01, DOMAIN.md #14, #31.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="command-untrusted-url",
        kinds=("command.untrusted_url",),
        title="Command points at an untrusted location",
        severity=Severity.MEDIUM,
        references=("OCPP 2.0.1 L01", "OCPP 2.0.1 N01", "DOMAIN.md #31"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CommandIssued, StationBooted)
    Config: ClassVar[type[Any]] = UntrustedUrlConfig

    def __init__(self, config: UntrustedUrlConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._actions = frozenset(config.actions)
        self._trusted = HostAllowList(
            config.trusted_hosts, setting=f"detector {self.info.name}: trusted_hosts"
        )
        self._hosts: BoundedState[tuple[str, str], int] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )
        self._seen: dict[str, int] = {}
        self._vendors: BoundedState[str, tuple[str, ...]] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._hosts) + len(self._vendors)

    def _learn(self, event: CommandIssued, host: str) -> tuple[bool, int]:
        """Learn which hosts serve each purpose: (whether ``host`` was known, locations seen before)."""
        purpose = "logs" if event.action in _LOG_ACTIONS else "firmware"
        seen = self._seen.get(purpose, 0)
        self._seen[purpose] = seen + 1
        known = self._hosts.get((purpose, host))
        self._hosts.put((purpose, host), (known or 0) + 1, event.ts)
        return known is not None, seen

    def _novelty(self, event: CommandIssued, host: str) -> list[tuple[Severity, str]]:
        """Without an allow-list: a host new to this network, beyond the learning period or the vendor's name."""
        known, seen = self._learn(event, host)
        if known:
            return []
        after = self.config.new_host_after
        if after > 0 and seen >= after:
            return [(Severity.MEDIUM, "host never used for this purpose before")]
        vendor = self._vendors.get(event.station) if self.config.vendor_hosts else None
        if vendor and not _is_ip(host) and not _vendor_host(host, vendor):
            return [
                (Severity.MEDIUM, "host is neither the station vendor's nor used for this purpose before")
            ]
        return []

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, StationBooted):
            if event.vendor and self.config.vendor_hosts:
                self._vendors.put(event.station, vendor_words(event.vendor), event.ts)
            return ()
        if not isinstance(event, CommandIssued) or event.action not in self._actions:
            return ()
        out: list[Finding] = []
        for url in event.urls[:4]:
            finding = self._check(event, url)
            if finding is not None:
                out.append(finding)
        return out

    def _check(self, event: CommandIssued, url: str) -> Finding | None:
        try:
            parts = urlsplit(url.strip())
            host = (parts.hostname or "").lower()
        except ValueError:
            parts, host = urlsplit(""), ""
        scheme = parts.scheme.lower()
        trusted = bool(host) and self._trusted.allows(host)
        reasons: list[tuple[Severity, str]] = []
        if event.url_credentials:
            reasons.append((Severity.MEDIUM if trusted else Severity.HIGH, "credentials embedded in the URL"))
        if not trusted:
            reasons.extend(self._untrusted(event, scheme, host))
            if host and not self._trusted:
                reasons.extend(self._novelty(event, host))
        if not reasons:
            return None
        severity = max(s for s, _ in reasons)
        location = _safe_url(parts) if host else "<no host>"
        return self.finding(
            "command.untrusted_url",
            ts=event.ts,
            incident=f"{event.action}:{scheme}://{host}",
            summary=f"{event.action} to station {event.station} points at {location}: "
            + "; ".join(r for _, r in reasons),
            severity=severity,
            station=event.station,
            evidence={
                "action": event.action,
                "location": location[:200],
                "host": host or None,
                "scheme": scheme or None,
                "reasons": [r for _, r in reasons],
                "url_credentials": event.url_credentials,
                "trusted_host": trusted,
                "ocpp": event.ocpp,
            },
        )

    def _untrusted(self, event: CommandIssued, scheme: str, host: str) -> list[tuple[Severity, str]]:
        cfg = self.config
        reasons: list[tuple[Severity, str]] = []
        if scheme not in _PLAIN | _SECURE:
            reasons.append((Severity.HIGH, f"unexpected scheme {scheme or '<none>'}"))
        if not host:
            reasons.append((Severity.MEDIUM, "no host"))
            return reasons
        if self._trusted:
            reasons.append((Severity.HIGH, "host is not in the trusted list"))
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
            if host == "localhost" or host.endswith(".localhost"):
                reasons.append((Severity.HIGH, "points at the station itself (localhost)"))
        if address is not None:
            if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
                reasons.append((Severity.HIGH, "internal or special address"))
            elif address.is_private:
                reasons.append((Severity.MEDIUM, "private IP-literal host"))
            else:
                reasons.append((Severity.MEDIUM, "IP-literal host (no name to verify)"))
        if scheme in _PLAIN and not cfg.allow_plain_transport:
            unsigned = event.action == _UNSIGNED_FIRMWARE and event.ocpp == "1.6"
            reasons.append(
                (Severity.HIGH, f"unsigned firmware over plain {scheme}")
                if unsigned
                else (Severity.MEDIUM, f"plain {scheme} without TLS")
            )
        return reasons


def vendor_words(vendor: str) -> tuple[str, ...]:
    """The distinctive words of a vendor name (``"Alfen BV"`` -> ``("alfen",)``), and all of them run together."""
    words = [w for w in re.findall(r"[a-z0-9]+", vendor.lower()) if len(w) >= 3 and w not in _GENERIC_WORDS]
    joined = "".join(re.findall(r"[a-z0-9]+", vendor.lower()))
    if len(joined) >= 3 and joined not in words:
        words.append(joined)
    return tuple(words[:6])


def _vendor_host(host: str, vendor: tuple[str, ...]) -> bool:
    """Whether a label of ``host`` (TLD aside, hyphens ignored) carries a word of the vendor's name."""
    labels = [label.replace("-", "") for label in host.rstrip(".").split(".")[:-1]]
    return any(word in label for word in vendor for label in labels)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
