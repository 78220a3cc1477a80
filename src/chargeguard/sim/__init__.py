"""Charging-network simulator: realistic OCPP captures of a station network with labelled incidents.

``chargeguard simulate --stations N --days D --seed S --out DIR`` writes:

* ``capture.jsonl`` (or ``.gz`` with ``--gzip``): the capture format of docs/formats.md, in transport order.
  Tokens are raw (synthetic) card ids, as in captures from other systems.
* ``stations.csv``: the inventory, a whole-station row then one row per connector (AC/DC, max_kw; connector ids
  as on the wire: ``"2"`` for 1.6, ``"<evse>/<connector>"`` for 2.0.1).
* ``truth.jsonl``: one incident per line - ``kind, stations, transactions, start, end, detectable_at, note``,
  optional ``also_acceptable`` and ``subtle``, plus ``variant`` (the incident variant's stable name). Times are
  RFC 3339 UTC; ``start``/``end`` span the incident's written lines; ``detectable_at`` is the event time of the
  line that completes the evidence (its payload timestamp when that is sane, else its transport time).
* ``network.json``: seed and parameters, counts, the operator's firmware hosts (the allow-list a
  command.untrusted_url check needs) and the dataset credits of the fitted distributions.

Layers, in data-flow order: ``distributions`` (fitted on the public datasets by scripts/fit_distributions.py)
-> ``network`` (cities, stations, drivers) -> ``wire``/``session_traffic``/``exchange`` (one session as frames;
``exchange`` is the public API importers use) -> ``sessions`` and ``station_traffic`` (benign demand and station
life) -> ``injection`` + ``incidents`` (tuning set) / ``incidents_holdout`` (frozen set) -> ``runner`` (hourly
slices, heap merge, bounded memory) -> ``output``.

``real_capture`` + ``real_injection`` run the same incident builders on a mirror of an imported real capture's
stations and merge their traffic into it (station, command and protocol kinds and session.phantom; the
session-level kinds are injected into the records by ``chargeguard.eval.inject``).
"""
