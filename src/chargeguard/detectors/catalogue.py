"""The detector catalogue, generated from the registered detectors' info and docstrings (CLI, docs, API)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from chargeguard.detectors.registry import detector_classes


def _config_rows(cls: type[Any]) -> list[dict[str, Any]]:
    config: Any = cls.Config
    defaults = config()
    if not dataclasses.is_dataclass(defaults):
        return []
    return [{"name": f.name, "default": getattr(defaults, f.name)} for f in dataclasses.fields(config)]


def catalogue_rows() -> list[dict[str, Any]]:
    """One row per detector: name, kinds, severity, title, one-line summary, full docstring, settings, references."""
    rows = []
    for cls in detector_classes():
        doc = inspect.getdoc(cls) or ""
        summary = doc.strip().split("\n\n", 1)[0].replace("\n", " ")
        info = cls.info
        rows.append(
            {
                "name": info.name,
                "kinds": list(info.kinds),
                "severity": info.severity.label,
                "title": info.title,
                "summary": summary or info.title,
                "doc": doc,
                "settings": _config_rows(cls),
                "references": list(info.references),
            }
        )
    return sorted(rows, key=lambda r: r["kinds"][0] if r["kinds"] else r["name"])
