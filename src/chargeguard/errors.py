"""The one exception tree of chargeguard.

::

    ChargeguardError                 base of everything chargeguard raises on purpose
    ├── ConfigError                  settings, key files, allow-lists, inventories that cannot be used
    │   └── KeyMaterialError         a key is missing, unreadable, world-readable or of the wrong version
    ├── InputError                   a record from outside could not be used (file and line when known)
    │   ├── FrameError               an OCPP-J frame is malformed; carries the OCPP CALLERROR code of its version
    │   └── CaptureError             a capture file as a whole cannot be read
    ├── StoreError                   the database could not be reached or migrated
    └── VaultError                   a vault operation was refused (reveal without approval, bad audit chain, ...)

Findings about the monitored network are alerts, never exceptions. Foreign exceptions (orjson, msgspec,
SQLAlchemy, cryptography) are translated into this tree at the module that talks to the foreign library,
with ``raise ... from exc``.
"""

from __future__ import annotations


class ChargeguardError(Exception):
    """Base of every error chargeguard raises on purpose."""


class ConfigError(ChargeguardError):
    """Settings, key files, allow-lists or inventories that cannot be used."""


class KeyMaterialError(ConfigError):
    """A key is missing, unreadable, unsafe (file mode, owner) or of an unknown version."""


class InputError(ChargeguardError):
    """A record from outside could not be used.

    ``source`` names where it came from (``file:line`` for files), never its content.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class FrameError(InputError):
    """An OCPP-J frame is malformed.

    ``code`` is the CALLERROR code to answer with (version-specific names, see
    ``chargeguard.sources.ocpp.frames.callerror_code``); ``reason`` is a stable machine name
    (``not_json``, ``bad_shape``, ``schema``, ``unknown_action``, ``bad_timestamp``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        code: str = "FormatViolation",
        source: str | None = None,
        message_id: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message, source=source)
        self.reason = reason
        self.code = code
        self.message_id = message_id
        self.action = action


class CaptureError(InputError):
    """A capture file as a whole cannot be read (missing, not a capture, unreadable)."""


class StoreError(ChargeguardError):
    """The database could not be reached, migrated or written."""


class VaultError(ChargeguardError):
    """A vault operation was refused or its records are inconsistent."""
