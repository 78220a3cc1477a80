"""Alembic migration scripts of the store (run in code by ``chargeguard.store.migrate``)."""
