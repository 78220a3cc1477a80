"""Calls toward OCPI partners: envelope checks, retries with back-off, and paginated pulls that detect loops."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import structlog

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.envelope import (
    SUCCESS,
    PaginationLoopError,
    PartnerError,
)
from chargeguard.vault.redact import redact_text

log = structlog.get_logger("chargeguard.ocpi.client")

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


def _safe_url(url: str) -> str:
    """URLs toward partners can carry token uids (``/tokens/<uid>/authorize``): redact before logging."""
    return redact_text(url)


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class OcpiClient:
    """One HTTP client for all partners; every request carries X-Request-ID and X-Correlation-ID.

    Idempotent requests (GET, PUT, PATCH, DELETE and, explicitly, authorisation) are retried on time-outs,
    transport errors, 429 and 5xx with exponential back-off and jitter (``backoff_s * 2**attempt``);
    non-idempotent ones only when the connection could not be opened.
    """

    def __init__(
        self,
        own: h.Party,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        backoff_s: float = 0.2,
        verify: Any = True,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.own = own
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str,
        json: Any = None,
        to: h.Party | None = None,
        idempotent: bool | None = None,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send one request (with retries); ``to`` adds the routing headers (module requests only)."""
        if idempotent is None:
            idempotent = method.upper() != "POST"
        hdrs = {
            h.AUTHORIZATION: h.encode_token(token),
            h.CORRELATION_ID: correlation_id or h.new_request_id(),
        }
        if to is not None:
            hdrs.update(h.routing_headers(self.own, to))
        last: Exception | None = None
        for attempt in range(self._max_attempts):
            hdrs[h.REQUEST_ID] = h.new_request_id()
            try:
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    headers=hdrs,
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.ConnectError as exc:
                last = exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = exc
                if not idempotent:
                    break
            else:
                if response.status_code not in _RETRY_STATUS or not idempotent:
                    return response
                last = PartnerError(f"HTTP {response.status_code}")
            if attempt + 1 < self._max_attempts:
                delay = self._backoff_s * (2**attempt) * (1 + random.random())
                log.warning(
                    "ocpi.client.retry",
                    method=method,
                    url=_safe_url(url),
                    attempt=attempt + 1,
                    error=type(last).__name__,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)
        raise PartnerError(
            f"{method} {_safe_url(url)} failed after {self._max_attempts} attempts: {type(last).__name__}"
        ) from last

    async def call(self, method: str, url: str, *, token: str, **kwargs: Any) -> Any:
        """A request whose OCPI envelope must say 1000; returns its ``data``."""
        response = await self.request(method, url, token=token, **kwargs)
        return self.data_of(response, method, url)

    @staticmethod
    def envelope_of(response: httpx.Response, method: str, url: str) -> dict[str, Any]:
        where = f"{method} {_safe_url(url)}"
        if response.status_code == 401:
            raise PartnerError(
                f"{where}: the partner refused our credentials token (HTTP 401)", status_code=2000
            )
        try:
            body = response.json()
        except ValueError:
            raise PartnerError(
                f"{where}: HTTP {response.status_code}, not an OCPI envelope (not JSON)"
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("status_code"), int):
            raise PartnerError(f"{where}: HTTP {response.status_code}, not an OCPI envelope (no status_code)")
        return body

    def data_of(self, response: httpx.Response, method: str, url: str) -> Any:
        body = self.envelope_of(response, method, url)
        code = body["status_code"]
        if code != SUCCESS or response.status_code >= 400:
            message = str(body.get("status_message") or "")[:200]
            raise PartnerError(
                f"{method} {_safe_url(url)}: OCPI status {code} (HTTP {response.status_code}) {message}".rstrip(),
                status_code=code,
            )
        return body.get("data")

    async def pull(
        self,
        url: str,
        *,
        token: str,
        to: h.Party | None = None,
        limit: int | None = None,
        params: Mapping[str, str] | None = None,
        max_pages: int = 100_000,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a paginated sender endpoint, following ``Link: <...>; rel="next"``.

        Raises :class:`PaginationLoopError` when a next link repeats a page already fetched, when a page is
        empty but still links onward, or when the pages exceed what X-Total-Count / X-Limit announce.
        """
        query = dict(params or {})
        if limit is not None:
            query["limit"] = str(limit)
        next_url: str | None = with_query(url, query) if query else url
        seen: set[str] = set()
        pages = 0
        expected_pages: int | None = None
        correlation = h.new_request_id()
        while next_url is not None:
            if next_url in seen:
                raise PaginationLoopError(f"pagination loop: {_safe_url(next_url)} was already fetched")
            seen.add(next_url)
            pages += 1
            if pages > max_pages or (expected_pages is not None and pages > expected_pages + 1):
                raise PaginationLoopError(
                    f"pagination does not end: {pages} pages fetched from {_safe_url(url)} "
                    f"(X-Total-Count/X-Limit announce {expected_pages})"
                )
            response = await self.request("GET", next_url, token=token, to=to, correlation_id=correlation)
            data = self.data_of(response, "GET", next_url)
            if not isinstance(data, list):
                raise PartnerError(f"GET {_safe_url(next_url)}: data is not a list")
            total, page_limit = response.headers.get(h.TOTAL_COUNT), response.headers.get(h.LIMIT)
            if expected_pages is None and total and page_limit and total.isdigit() and page_limit.isdigit():
                expected_pages = max(1, -(-int(total) // max(1, int(page_limit))))
            for item in data:
                if isinstance(item, dict):
                    yield item
            next_url = h.parse_next_link(response.headers.get(h.LINK))
            if next_url is not None and not data:
                raise PaginationLoopError(f"empty page from {_safe_url(url)} still links to a next page")
