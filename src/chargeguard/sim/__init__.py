"""Charging-network simulator: realistic OCPP captures of a station network with labelled incidents."""
