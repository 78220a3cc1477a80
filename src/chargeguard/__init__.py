"""chargeguard: fraud and attack detection for EV-charging networks."""

__version__ = "0.1.0"
