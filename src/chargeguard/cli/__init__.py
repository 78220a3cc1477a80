"""The ``chargeguard`` command: parses arguments, builds Settings, calls the library; nothing else.

Each command family lives in its own module with a ``register(app)`` function; this module wires them together.
"""

from __future__ import annotations

import typer

from chargeguard.cli import allow, evaluate, gateway, reconcile, scan, serve, sim, tokens

app = typer.Typer(
    name="chargeguard",
    help="Fraud and attack detection for EV-charging networks (OCPP, OCPI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (scan, allow, sim, evaluate, tokens, gateway, serve, reconcile):
    module.register(app)


def main() -> None:
    app()
