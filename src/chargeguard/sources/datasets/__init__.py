"""Importers of public charging-session datasets (Dundee, Perth & Kinross, Trondheim, EPFL, CSV by mapping).

Each importer reads a dataset's files into :class:`~chargeguard.sources.datasets.records.SessionRecord` rows
and a station inventory; :mod:`~chargeguard.sources.datasets.render` turns them into an OCPP capture.
"""
