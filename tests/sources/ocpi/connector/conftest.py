"""Fixtures for the OCPI connector tests."""

from __future__ import annotations

import pytest

from sources.ocpi.connector.ocpi_kit import HostRouter


@pytest.fixture
def router() -> HostRouter:
    return HostRouter()
