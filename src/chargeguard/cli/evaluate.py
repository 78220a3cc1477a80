"""CLI commands: evaluate (see the module's register function)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    del app
