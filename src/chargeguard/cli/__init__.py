"""The ``chargeguard`` command: parses arguments, builds Settings, calls the library; nothing else.

Each command family lives in its own module with a ``register(app)`` function; this module wires them together.
Running one command imports only the module that registers it (the gateway and OCPI server pull in web frameworks
a ``scan`` never needs); ``--help`` and ``chargeguard.cli.app`` register them all.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

# module -> the top-level commands it registers
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "scan": ("scan", "detectors", "demo"),
    "allow": ("allow",),
    "sim": ("simulate",),
    "evaluate": ("eval", "import-sessions"),
    "tokens": ("tokens", "vault"),
    "gateway": ("gateway", "gateway-hash-password"),
    "serve": ("serve",),
    "reconcile": ("reconcile",),
}
_MODULE_OF = {command: module for module, commands in COMMAND_MODULES.items() for command in commands}
_full_app: typer.Typer | None = None


def build_app(modules: tuple[str, ...] = tuple(COMMAND_MODULES)) -> typer.Typer:
    """A ``chargeguard`` application with the commands of ``modules`` registered."""
    app = typer.Typer(
        name="chargeguard",
        help="Fraud and attack detection for EV-charging networks (OCPP, OCPI).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root() -> None:
        # a group even when one module registers a single command: `chargeguard reconcile ...` keeps its name
        pass

    for module in modules:
        importlib.import_module(f"chargeguard.cli.{module}").register(app)
    return app


def __getattr__(name: str) -> Any:
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    module = _MODULE_OF.get(command) if command is not None else None
    build_app((module,) if module is not None else tuple(COMMAND_MODULES))()
