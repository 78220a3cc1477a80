"""The inline OCPP security gateway: stations connect here, the gateway authenticates them, checks every frame and
relays to the operator's central system (issue 5).

Modules, in the order a connection meets them::

    config.py          TOML + environment -> GatewayConfig (pydantic), listeners, TLS, upstream, stations, policy
    tls.py             server / upstream SSL contexts (OCPP cipher suites, TLS 1.2+), profile-3 certificate checks
    auth.py            scrypt password hashes, OCPP password rules, token buckets, lockout, credential cache
    credentials.py     learned password rotations persisted across restarts (scrypt hashes only)
    handshake.py       authentication of one upgrade against the station's security profile
    proxy.py           Gateway: listeners, upstream-first negotiation, duplicate-connection policy
    upstream.py        the CSMS leg: identity, offer, credentials, compression, refusals mirrored to the station
    session.py         one relayed connection: guard chain per frame, CALLERROR answers, faults, drain
    wire.py            one parse per frame; known actions per version and direction
    guards.py          the ordered guard chain and its CALLERROR table
    enforce.py         enforce mode: the CSMS's answer for a token under alert becomes Blocked
    cache_clear.py     ClearCache from the gateway to stations holding a rewritten answer, once the token is released
    allowlist_watch.py enforce mode follows the operator's allow-list while running
    observer.py        FrameObserver: capture-format lines out of the gateway
    capture_writer.py  the default recorder (pseudonymised, rotated, gzip)
    redact.py          tokens -> pseudonyms, secrets -> markers, inside frames
    metrics.py         Prometheus text exposition, /healthz and /metrics
"""
