"""``python -m chargeguard`` runs the CLI."""

from chargeguard.cli import main

main()
