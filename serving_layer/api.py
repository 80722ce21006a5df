"""The HTTP JSON API of DESIGN.md over one ServingLayer (FastAPI + uvicorn; `make serve` / `retail serve`).

Endpoints (all GET, JSON):
  /api/revenue?start=ISO&end=ISO&grain=minute|hour|day[&product_id=..|&category=..]
      {"high_water_mark": ISO|null, "low_water_mark": ISO|null, "rows": [{"bucket_start", "revenue" (decimal
       string), "orders", "units", "distinct_users", "source": "batch"|"speed"}]} over [start, end); grain
       defaults to minute; rows are batch rows for buckets inside [low_water_mark, high_water_mark), speed rows
       elsewhere (low_water_mark null: unknown, batch for every bucket before high_water_mark)
  /api/inventory   {"rows": [...], "low_stock": n}
  /api/alerts      {"rows": [...], "open": n}      open alerts and those of the last 24 hours
  /api/health      speed layer state (running/stopped/failed, last error), newest event time, freshness,
                   offsets behind, last batch run, W, L, speed source status

A bad parameter gets 400 {"error": "bad_request", "message": "..."}; nothing ever returns a stack trace.

Example::

    curl 'http://127.0.0.1:8000/api/revenue?start=2026-01-05T00:00:00Z&end=2026-01-06T00:00:00Z&grain=hour'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.settings import Settings
from serving_layer.auth import authorized, check_exposure, host_allowed
from serving_layer.errors import BadRequest, ViewUnreadable
from serving_layer.service import ServingLayer
from serving_layer.views import EARLIEST, GRAINS, LATEST, TOTAL_KEY

__all__ = ["EARLIEST", "LATEST", "create_app", "iso", "jsonable", "parse_instant", "revenue_payload", "serve"]

log = logging.getLogger("serving_layer.api")
_REVENUE_PARAMETERS = ("start", "end", "grain", "product_id", "category")


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with a Z, to the second (or microsecond when there is one)."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: datetimes as UTC ISO strings, Decimals as decimal strings (money stays exact)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, converted column-wise in Arrow: timestamps to ISO strings, decimals to strings."""
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            utc = column.cast(pa.timestamp("us", tz="UTC"))
            if pc.any(pc.not_equal(pc.subsecond(utc), 0)).as_py():  # e.g. event times: keep the fraction
                columns[name] = [jsonable(v) for v in column.to_pylist()]
                continue
            # %S of a sub-second unit prints a fraction: whole seconds first
            text = pc.strftime(utc.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ", locale="C")
            columns[name] = text.to_pylist()
        elif pa.types.is_decimal(column.type):
            # Arrow renders DECIMAL(18,2) with exactly its two places: "7.50", "-0.50"
            columns[name] = pc.cast(column, pa.string()).to_pylist()
        elif pa.types.is_floating(column.type):
            columns[name] = [jsonable(v) for v in column.to_pylist()]
        else:
            columns[name] = column.to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _json(payload: dict[str, Any]) -> Response:
    # serialised here: FastAPI's jsonable_encoder walks every value again and costs more than the query
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")


def parse_instant(name: str, text: str | None) -> datetime:
    """An ISO-8601 query parameter as an aware UTC datetime; a value without a zone is read as UTC.

    Only [EARLIEST, LATEST) is accepted: the date arithmetic behind a query (zone conversion, rounding a bucket up
    by a day) must not run past Python's year 1 or 9999, and no event can lie outside it anyway.
    """
    if text is None or not text.strip():
        raise BadRequest(f"parameter {name!r} is required: an ISO-8601 time such as 2026-01-05T10:00:00Z")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone offset moves 9999-12-31 past year 9999
        raise BadRequest(
            f"parameter {name!r} must be an ISO-8601 time such as 2026-01-05T10:00:00Z, got {text!r}"
        ) from None
    if not EARLIEST <= moment < LATEST:
        raise BadRequest(f"parameter {name!r} must be in [{iso(EARLIEST)}, {iso(LATEST)}), got {text!r}")
    return moment


def revenue_payload(serving: ServingLayer, query: Mapping[str, str]) -> dict[str, Any]:
    """The /api/revenue answer for raw query parameters (validated here; BadRequest names the culprit)."""
    unknown = sorted(set(query) - set(_REVENUE_PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; expected {', '.join(_REVENUE_PARAMETERS)}")
    start = parse_instant("start", query.get("start"))
    end = parse_instant("end", query.get("end"))
    grain = query.get("grain", "minute")
    if grain not in GRAINS:
        raise BadRequest(f"parameter 'grain' must be one of {', '.join(GRAINS)}, got {grain!r}")
    product_id, category = query.get("product_id"), query.get("category")
    if product_id is not None and category is not None:
        raise BadRequest("give at most one of 'product_id' and 'category'")
    dimension, key = "total", TOTAL_KEY
    for name, value, dim in (("product_id", product_id, "product"), ("category", category, "category")):
        if value is not None:
            if not value.strip():
                raise BadRequest(f"parameter {name!r} must not be empty")
            dimension, key = dim, value
    result = serving.sales(start, end, grain, dimension=dimension, key=key)  # type: ignore[arg-type]
    return {
        "high_water_mark": iso(result.high_water_mark) if result.high_water_mark else None,
        "low_water_mark": iso(result.low_water_mark) if result.low_water_mark else None,
        "rows": _records(result.rows),
    }


def create_app(serving: ServingLayer, auth_token: str | None = None) -> FastAPI:
    """The API application over ``serving`` (one ServingLayer, shared by every request).

    With ``auth_token`` every request needs ``Authorization: Bearer <token>`` (401 otherwise); without one every
    request must be addressed to a loopback host (400 otherwise: ``auth.host_allowed``).
    """
    app = FastAPI(title="retail-lambda serving API", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")

    if not auth_token:  # loopback only: requests must be addressed to loopback too (no DNS rebinding)

        @app.middleware("http")
        async def _require_loopback_host(request: Request, call_next):  # type: ignore[no-untyped-def]
            if not host_allowed(request.headers.get("host")):
                return JSONResponse(
                    {"error": "bad_request", "message": "the Host header must name a loopback address"},
                    status_code=400,
                )
            return await call_next(request)

    if auth_token:

        @app.middleware("http")
        async def _require_token(request: Request, call_next):  # type: ignore[no-untyped-def]
            if not authorized(request.headers.get("authorization"), auth_token):
                return JSONResponse(
                    {"error": "unauthorized", "message": "send Authorization: Bearer <RETAIL_SERVING_AUTH_TOKEN>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await call_next(request)

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": "bad_request", "message": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": "bad_request", "message": message}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http_error", "message": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(ViewUnreadable)
    async def _unreadable(_request: Request, error: ViewUnreadable) -> JSONResponse:
        log.error("view unreadable: %s", error)
        return JSONResponse({"error": "view_unreadable", "message": str(error)}, status_code=503)

    @app.exception_handler(Exception)
    async def _internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": "internal", "message": "internal error; see the server log"}, status_code=500)

    @app.get("/api/revenue")
    def revenue(request: Request) -> Response:
        return _json(revenue_payload(serving, dict(request.query_params)))

    @app.get("/api/inventory")
    def inventory() -> Response:
        rows = _records(serving.inventory())
        return _json({"rows": rows, "low_stock": sum(1 for r in rows if r["below_threshold"])})

    @app.get("/api/alerts")
    def alerts() -> Response:
        rows = _records(serving.alerts())
        return _json({"rows": rows, "open": sum(1 for r in rows if r["open"])})

    @app.get("/api/health")
    def health() -> Response:
        return _json(jsonable(serving.health()))

    return app


def serve(settings: Settings) -> None:
    """Run the API on settings.bind_host:settings.api_port until interrupted (`retail serve`)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the speed topic consumer's client: no per-fetch chatter
    token = check_exposure(settings, "API")  # before anything starts: no listener beyond loopback without auth
    serving = ServingLayer.from_settings(settings)
    try:
        app = create_app(serving, token)
        print(
            f"serving API on http://{settings.bind_host}:{settings.api_port}/api (lake {settings.lake_root}, "
            f"speed views from {_speed_source_label(settings)})",
            flush=True,
        )
        uvicorn.run(app, host=settings.bind_host, port=settings.api_port, log_level="info", access_log=False)
    finally:
        serving.close()  # uvicorn returns after a graceful shutdown (SIGINT, SIGTERM): stop the consumer thread


def _speed_source_label(settings: Settings) -> str:
    if settings.serving_speed_source != "kafka":
        return "the Delta speed tables"
    topics = ", ".join((settings.speed_sales_topic, settings.speed_inventory_topic, settings.alerts_topic))
    return f"topics {topics} at {settings.kafka_bootstrap_servers}"
