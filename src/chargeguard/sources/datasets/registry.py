"""The importer for each ``--format`` name of ``chargeguard import-sessions``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chargeguard.errors import ConfigError
from chargeguard.sources.datasets.csvmap import import_csv
from chargeguard.sources.datasets.dundee import import_dundee
from chargeguard.sources.datasets.epfl import import_epfl
from chargeguard.sources.datasets.mapping import load_mapping
from chargeguard.sources.datasets.perth import import_perth
from chargeguard.sources.datasets.records import DatasetImport
from chargeguard.sources.datasets.trondheim import import_trondheim

IMPORTERS: dict[str, Callable[[Sequence[Path]], DatasetImport]] = {
    "dundee": import_dundee,
    "perth": import_perth,
    "trondheim": import_trondheim,
    "epfl": import_epfl,
}
FORMATS = (*IMPORTERS, "csv")


def import_dataset(fmt: str, inputs: Sequence[Path], *, mapping: Path | None = None) -> DatasetImport:
    """Read ``inputs`` (files or directories) in format ``fmt``; ``csv`` needs a mapping file."""
    if fmt == "csv":
        if mapping is None:
            raise ConfigError("--format csv needs --mapping FILE (see docs/evaluation.md)")
        return import_csv([p for p in inputs if p.is_file()] + _dir_csvs(inputs), load_mapping(mapping))
    if mapping is not None:
        raise ConfigError(f"--mapping only applies to --format csv, not {fmt}")
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return importer(inputs)


def _dir_csvs(inputs: Sequence[Path]) -> list[Path]:
    return [path for item in inputs if item.is_dir() for path in sorted(item.glob("*.csv"))]
