"""JSON responses: every error body is ``{"error": code, "message": text}`` (design.md §3.5)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status, headers or None, "application/json")


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": code, "message": message})


def failure(status: int, code: str, message: str, **headers: str) -> Response:
    return Response(error_body(code, message), status, headers or None, "application/json")
