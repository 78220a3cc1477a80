"""FastAPI app factory for the OCPI 2.2.1 connector: routers, OCPI error envelopes, ids and a redacted access log."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargeguard.sources.ocpi.connector import credentials, locations, modules, versions
from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.context import Connector, ocpi_response
from chargeguard.sources.ocpi.connector.envelope import (
    CLIENT_ERROR,
    INVALID_PARAMETERS,
    SERVER_ERROR,
    OcpiError,
)
from chargeguard.vault.redact import redact_text

log = structlog.get_logger("chargeguard.ocpi.http")


def create_app(connector: Connector) -> FastAPI:
    """The OCPI HTTP app for one platform; ``connector`` carries config, partner store, repositories, decision."""
    app = FastAPI(title="chargeguard OCPI 2.2.1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.connector = connector
    app.include_router(versions.router)
    app.include_router(credentials.router)
    app.include_router(modules.router)
    app.include_router(locations.router)

    @app.exception_handler(OcpiError)
    async def on_ocpi_error(request: Request, exc: OcpiError) -> Response:
        return ocpi_response(
            request, None, status_code=exc.status_code, message=exc.message, http_status=exc.http_status
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = CLIENT_ERROR if exc.status_code < 500 else SERVER_ERROR
        message = "not found" if exc.status_code == 404 else f"HTTP {exc.status_code}"
        return ocpi_response(request, None, status_code=code, message=message, http_status=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return ocpi_response(
            request, None, status_code=INVALID_PARAMETERS, message="invalid request parameters"
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("ocpi.http.unhandled", error=type(exc).__name__, path=redact_text(request.url.path))
        return ocpi_response(
            request, None, status_code=SERVER_ERROR, message="internal error", http_status=500
        )

    @app.middleware("http")
    async def ids_and_access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """X-Request-ID / X-Correlation-ID echoed (or created) on every response; access log without tokens."""
        request_id = h.safe_id(request.headers.get(h.REQUEST_ID)) or h.new_request_id()
        correlation_id = h.safe_id(request.headers.get(h.CORRELATION_ID)) or request_id
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # answered here, so even a crash carries the envelope and the ids
            log.error("ocpi.http.unhandled", error=type(exc).__name__, path=redact_text(request.url.path))
            response = ocpi_response(
                request, None, status_code=SERVER_ERROR, message="internal error", http_status=500
            )
        response.headers[h.REQUEST_ID] = request_id
        response.headers[h.CORRELATION_ID] = correlation_id
        log.info(
            "ocpi.http.access",
            method=request.method,
            path=redact_text(request.url.path),  # token uids travel in OCPI URLs
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=request_id,
            correlation_id=correlation_id,
        )
        return response

    return app
