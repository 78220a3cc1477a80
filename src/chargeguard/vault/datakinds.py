"""The kinds of personal data the vault keeps a retention period for (re-exported by ``vault.retention``)."""

from __future__ import annotations

from enum import StrEnum


class DataKind(StrEnum):
    """The kinds of personal data with their own retention period."""

    ALERTS = "alerts"
    TRANSACTIONS = "transactions"
    CAPTURES = "captures"
    SEALED_TOKENS = "sealed_tokens"
