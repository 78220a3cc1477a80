"""Station identity rules: BootNotification identity changes and firmware version regressions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.state import BoundedState
from chargeguard.detectors.versions import FirmwareVersion, compare_parsed, downgrade_depth, parse_version
from chargeguard.events import Event, Finding, FirmwareStatusReported, Severity, StationBooted

_FIELDS = ("vendor", "model", "serial")
_MAX_TEXT = 50
_MAX_IDENTITIES = 4
_MAX_LINES = 4
_FAILED_INSTALL = frozenset({"installationfailed", "installverificationfailed"})

Identity = tuple[str | None, str | None, str | None]


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split()).casefold()
    return text[:_MAX_TEXT] or None


@dataclass(slots=True)
class _Identities:
    current: Identity
    seen: list[Identity] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IdentityChangeConfig:
    """station.identity_change has no thresholds: any change of vendor, model or serial counts."""


class IdentityChange(Detector[IdentityChangeConfig]):
    """A station identity whose BootNotification vendor, model or serial number changes.

    Catches: a BootNotification (1.6 chargePointVendor / chargePointModel / chargePointSerialNumber or
    chargeBoxSerialNumber; 2.0.1 chargingStation.vendorName / model / serialNumber) that differs from the
    last one seen for the same identity. A serial-number or vendor change is high (a different device is
    using the identity); a model change alone is medium; returning to an identity seen before (two devices
    taking turns on one identity, a cloned or impersonating station) is high. Firmware changes alone are not
    identity changes (see station.firmware_downgrade). Fields a station leaves out are not compared.

    Why: charge-point impersonation with stolen credentials or another station's certificate shows up as boot
    fingerprint drift (DOMAIN #25); with security profile 3 the certificate CN must equal the serial number
    (A00.FR.405 / B01.FR.12).

    False positives: a legitimate hardware swap under the same identity fires once (then the new identity is
    the baseline); controller-board replacements may change the serial. Allow-list the station for the swap
    window.

    References: OCPP 1.6 §4.2, OCPP 2.0.1 B01, A00.FR.405, DOMAIN.md #25.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-identity-change",
        kinds=("station.identity_change",),
        title="Station identity changed",
        severity=Severity.HIGH,
        references=("OCPP 2.0.1 B01", "OCPP 2.0.1 A00.FR.405", "DOMAIN.md #25"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (StationBooted,)
    Config: ClassVar[type[Any]] = IdentityChangeConfig

    def __init__(self, config: IdentityChangeConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Identities] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, StationBooted):
            return ()
        new: Identity = (_norm(event.vendor), _norm(event.model), _norm(event.serial))
        st = self._state.get(event.station)
        if st is None:
            self._state.put(event.station, _Identities(new, [new]), event.ts)
            return ()
        self._state.put(event.station, st, event.ts)
        old = st.current
        changed = [name for name, a, b in zip(_FIELDS, old, new, strict=True) if a and b and a != b]
        merged: Identity = (new[0] or old[0], new[1] or old[1], new[2] or old[2])
        if not changed:
            st.current = merged
            return ()
        returned = any(_same(merged, earlier) for earlier in st.seen)
        st.current = merged
        if not returned:
            st.seen.append(merged)
            del st.seen[:-_MAX_IDENTITIES]
        strong = "serial" in changed or "vendor" in changed or returned
        detail = {
            name: {"before": old[i], "after": new[i]} for i, name in enumerate(_FIELDS) if name in changed
        }
        how = "switched back to an identity seen before" if returned else f"changed {', '.join(changed)}"
        return (
            self.finding(
                "station.identity_change",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"station {event.station} {how} in its BootNotification",
                severity=Severity.HIGH if strong else Severity.MEDIUM,
                confidence=0.9 if strong else 0.7,
                station=event.station,
                evidence={"changed": detail, "returned_to_earlier_identity": returned, "ocpp": event.ocpp},
            ),
        )


def _same(a: Identity, b: Identity) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


@dataclass(slots=True)
class _Firmware:
    # highest version per product (vendor, model) and version line: firmware of another device is not comparable
    highest: dict[tuple[str, str], list[FirmwareVersion]] = field(default_factory=dict)
    failed_install_at: float | None = None
    # per product, the older version already reported: its later reboots are the same downgrade, not a new one
    reported: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FirmwareDowngradeConfig:
    """Thresholds of station.firmware_downgrade.

    rollback_grace_s: a downgrade within this long after the station reported a failed installation is an
    expected automatic rollback and is reported as low.
    """

    rollback_grace_s: float = 3600.0


class FirmwareDowngrade(Detector[FirmwareDowngradeConfig]):
    """A station booting a firmware version lower than the highest it ran before.

    Catches: BootNotification firmwareVersion (2.0.1 chargingStation.firmwareVersion) lower than the highest
    version seen for the station, compared with chargeguard.detectors.versions (vendor formats, pre-releases,
    build numbers, date-based versions). A major or minor regression is high, a patch or build regression
    medium, a regression right after a reported failed installation (automatic rollback) low. Versions of
    different formats or product lines, and unparseable strings, are compared only for equality and never
    alert.

    Why: rolling a station back to old firmware re-opens patched vulnerabilities (DOMAIN #31: Mennekes
    CVE-2025-22366/22368 firmware-update RCE); OCPP secure firmware update (L01, 1.6 whitepaper) signs images
    but does not forbid older signed ones.

    False positives: an operator's deliberate rollback of a bad release; allow-list the stations for the
    rollout. A downgraded station rebooting later (any number of times) into the version already reported is
    the same downgrade and is not reported again; a new older version, or the same one after an upgrade, is.

    References: OCPP 2.0.1 L01, OCPP 1.6 security whitepaper §6, DOMAIN.md #31.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-firmware-downgrade",
        kinds=("station.firmware_downgrade",),
        title="Station firmware downgraded",
        severity=Severity.HIGH,
        references=("OCPP 2.0.1 L01", "DOMAIN.md #31"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (StationBooted, FirmwareStatusReported)
    Config: ClassVar[type[Any]] = FirmwareDowngradeConfig

    def __init__(self, config: FirmwareDowngradeConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Firmware] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, FirmwareStatusReported):
            if event.status.strip().lower() in _FAILED_INSTALL:
                st = self._state.setdefault(event.station, _Firmware, event.ts)
                st.failed_install_at = event.ts.timestamp()
            return ()
        if not isinstance(event, StationBooted):
            return ()
        version = parse_version(event.firmware)
        if version is None:
            return ()
        st = self._state.setdefault(event.station, _Firmware, event.ts)
        product = (_norm(event.vendor) or "", _norm(event.model) or "")
        lines = st.highest.pop(product, None) or []
        st.highest[product] = lines  # most recently booted product last
        while len(st.highest) > _MAX_IDENTITIES:
            del st.highest[next(iter(st.highest))]
        for index, highest in enumerate(lines):
            order = compare_parsed(version, highest)
            if order is None:
                continue
            if order > 0:
                lines[index] = version
                st.reported.pop(product, None)
                return ()
            if order == 0:
                st.reported.pop(product, None)
                return ()
            if st.reported.get(product) == version.text:
                return ()  # the downgraded station rebooting into the version already reported
            st.reported[product] = version.text
            while len(st.reported) > _MAX_IDENTITIES:
                del st.reported[next(iter(st.reported))]
            return (self._downgrade(event, version, highest, st),)
        lines.append(version)
        del lines[:-_MAX_LINES]
        return ()

    def _downgrade(
        self, event: StationBooted, version: FirmwareVersion, highest: FirmwareVersion, st: _Firmware
    ) -> Finding:
        depth = downgrade_depth(version, highest)
        rollback = (
            st.failed_install_at is not None
            and 0 <= event.ts.timestamp() - st.failed_install_at <= self.config.rollback_grace_s
        )
        if rollback:
            severity = Severity.LOW
        elif depth in ("major", "minor", "year", "month"):
            severity = Severity.HIGH
        else:
            severity = Severity.MEDIUM
        return self.finding(
            "station.firmware_downgrade",
            ts=event.ts,
            incident=f"station:{event.station}",
            summary=f"station {event.station} booted firmware {version.text[:_MAX_TEXT]}, older than "
            f"{highest.text[:_MAX_TEXT]} seen before ({depth} regression)",
            severity=severity,
            station=event.station,
            evidence={
                "firmware": version.text[:_MAX_TEXT],
                "highest_seen": highest.text[:_MAX_TEXT],
                "regression": depth,
                "after_failed_installation": rollback,
                "ocpp": event.ocpp,
            },
        )
