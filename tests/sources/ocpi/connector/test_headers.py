"""Authorization token encoding, Link parsing and the envelope."""

from __future__ import annotations

import base64

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.envelope import envelope


def test_token_is_base64_in_the_header_and_decodes_back() -> None:
    value = h.encode_token("a-token-123")
    assert value == "Token " + base64.b64encode(b"a-token-123").decode()
    assert h.decode_authorization(value) == "a-token-123"
    assert h.decode_authorization("Token not*base64!") == "not*base64!"  # 2.1.1-style peers
    assert h.decode_authorization("Bearer abc") is None
    assert h.decode_authorization(None) is None
    assert h.decode_authorization("Token ") is None


def test_next_link_parsing() -> None:
    assert h.parse_next_link('<https://x/a?offset=5&limit=5>; rel="next"') == "https://x/a?offset=5&limit=5"
    assert h.parse_next_link('<https://x/p>; rel="prev", <https://x/n>; rel=next') == "https://x/n"
    assert h.parse_next_link('<https://x/p>; rel="prev"') is None
    assert h.parse_next_link("") is None


def test_envelope_shape_and_ids() -> None:
    body = envelope([1], 1000)
    assert body["status_code"] == 1000 and body["data"] == [1] and body["timestamp"].endswith("Z")
    assert "status_message" not in body
    assert envelope(None, 2001, "bad")["status_message"] == "bad"
    assert h.safe_id("abc") == "abc" and h.safe_id("x" * 65) is None and h.safe_id("a\nb") is None
