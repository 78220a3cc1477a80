"""Canary search: every encoding of a known token that could leak, and a search of every byte under a directory.

Used by the canary proof (seed captures with known tokens, run the product, search everything it wrote):
``canary_forms`` lists the byte strings that betray a token - plain, upper/lower case, colon-separated hex,
hex of its bytes, base64 (standard and URL-safe, at all three alignments, so a token *inside* a longer
base64-encoded text is found too), UTF-16 LE/BE, URL-encoded, JSON ``\\u`` escapes - and ``search_tree``
reads every file (following gzip members, also in truncated or rotated captures) and reports each hit with
the file and offset, plus how many bytes were searched.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

MIN_FORM_BYTES = 6  # shorter fragments (e.g. edge base64 pieces) would match by chance


def _base64_all_alignments(raw: bytes, encode: Callable[[bytes], bytes]) -> set[bytes]:
    """Base64 fragments that appear whenever ``raw`` is encoded inside any longer byte string."""
    out: set[bytes] = set()
    for pad in range(3):
        encoded = encode(b"\0" * pad + raw)
        # drop the characters that also depend on the bytes before and after the token
        start = (pad * 8 + 5) // 6 if pad else 0
        end_bits = (pad + len(raw)) * 8
        end = end_bits // 6
        fragment = encoded[start:end]
        if len(fragment) >= MIN_FORM_BYTES:
            out.add(fragment)
    return out


def canary_forms(token: str) -> set[bytes]:
    """Every byte string that would reveal ``token`` in a file (see the module docstring)."""
    spellings = {token, token.lower(), token.upper()}
    if len(token) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in token):
        pairs = [token[i : i + 2] for i in range(0, len(token), 2)]
        for sep in (":", "-", " "):
            spellings |= {sep.join(pairs).upper(), sep.join(pairs).lower()}
    forms: set[bytes] = set()
    for spelling in spellings:
        raw = spelling.encode("utf-8")
        forms.add(raw)
        forms |= {raw.hex().encode(), raw.hex().upper().encode()}
        forms |= _base64_all_alignments(raw, base64.b64encode)
        forms |= _base64_all_alignments(raw, base64.urlsafe_b64encode)
        forms |= {spelling.encode("utf-16-le"), spelling.encode("utf-16-be")}
        forms.add(quote(spelling, safe="").encode())
        forms.add("".join(f"%{b:02X}" for b in raw).encode())
        forms.add("".join(f"\\u{ord(c):04x}" for c in spelling).encode())
    return {f for f in forms if len(f) >= MIN_FORM_BYTES}


@dataclass(frozen=True, slots=True)
class CanaryHit:
    """A canary form found in a file; ``member`` says in which view: raw, gzip, and +json-unescaped/+url-decoded."""

    path: str
    offset: int
    canary: int  # index of the canary in the list given to search_tree (never the token itself)
    member: str


@dataclass
class CanaryReport:
    files: int = 0
    bytes_searched: int = 0
    hits: list[CanaryHit] = field(default_factory=list)


def _gunzip_prefix(data: bytes) -> bytes:
    """Decompress every gzip member of ``data`` as far as it goes (truncated members give what they hold)."""
    out = bytearray()
    rest = data
    while rest[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(rest)
        except zlib.error:
            break
        rest = d.unused_data
        if not d.eof:
            break
    return bytes(out)


_JSON_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")


def _unescape(m: re.Match[bytes]) -> bytes:
    return chr(int(m.group(1), 16)).encode("utf-8", errors="replace")


def _find_all(haystack: bytes, needle: bytes) -> Iterator[int]:
    at = haystack.find(needle)
    while at != -1:
        yield at
        at = haystack.find(needle, at + 1)


def search_tree(roots: Iterable[Path], canaries: list[str]) -> CanaryReport:
    """Search every file under ``roots`` (raw bytes, and decompressed gzip content) for every canary form."""
    forms = [(i, form) for i, token in enumerate(canaries) for form in canary_forms(token)]
    report = CanaryReport()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            data = path.read_bytes()
            report.files += 1
            layers = [("raw", data)]
            if data[:2] == b"\x1f\x8b":
                layers.append(("gzip", _gunzip_prefix(data)))
            for name, content in list(layers):  # partly escaped text: search it unescaped as well
                if b"\\u" in content:
                    layers.append((f"{name}+json-unescaped", _JSON_ESCAPE.sub(_unescape, content)))
                if b"%" in content:
                    layers.append((f"{name}+url-decoded", unquote_to_bytes(content)))
            seen: set[int] = set()  # canaries already found in this file: escaped views only add new ones
            for member, content in layers:
                derived = "+" in member
                if not derived:
                    report.bytes_searched += len(content)
                for index, form in forms:
                    if derived and index in seen:
                        continue
                    for offset in _find_all(content, form):
                        report.hits.append(CanaryHit(str(path), offset, index, member))
                        seen.add(index)
    return report
