"""OCPP-J: frame parsing and validation, normalisation to events, transaction assembly, the gateway."""
