"""The scan pipeline's batch GC setting: raised while a scan runs, restored after, even when the scan fails."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chargeguard.pipeline import batch_gc


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    old = gc.get_threshold()
    yield old
    gc.set_threshold(*old)


def test_young_threshold_is_raised_during_the_scan_and_restored(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_threshold_is_restored_when_the_scan_raises(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), batch_gc(50_000):
        raise RuntimeError("scan failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_disabled_automatic_collection_stays_disabled(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(0, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_a_higher_threshold_is_kept(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(100_000, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold()[0] == 100_000
