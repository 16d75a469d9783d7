"""Small HTTP helpers shared by the simulator's servers: FastAPI-like errors and bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["ApiError", "Handler", "Middleware", "error_middleware", "json_body", "json_ok"]


def dumps(obj: Any) -> str:
    """FastAPI's JSONResponse encoding: compact, UTF-8 kept as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


class ApiError(Exception):
    """Answer ``status`` with ``{"detail": ...}`` (or a given body)."""

    def __init__(
        self,
        status: int,
        detail: Any = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body if body is not None else {"detail": detail}
        self.headers = headers or {}
        super().__init__(f"{status}: {self.body}")


def not_found() -> ApiError:
    return ApiError(
        404, body={"error": "Not found", "detail": "No item found when one was expected"}
    )


def missing(body: Any, name: str) -> dict[str, Any]:
    return {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": body}


def wrong_type(name: str, value: Any, kind: str) -> dict[str, Any]:
    messages = {
        "string_type": "Input should be a valid string",
        "decimal_parsing": "Input should be a valid decimal",
        "bool_type": "Input should be a valid boolean",
        "list_type": "Input should be a valid list",
        "dict_type": "Input should be a valid dictionary",
        "int_type": "Input should be a valid integer",
    }
    return {"type": kind, "loc": ["body", name], "msg": messages[kind], "input": value}


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or FastAPI's 422 for a missing/invalid/non-object body."""
    raw = await request.text()
    try:
        body = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise ApiError(
            422,
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", exc.pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
        ) from None
    if body is None:
        raise ApiError(422, [missing(None, "body") | {"loc": ["body"]}])
    if not isinstance(body, dict):
        raise ApiError(
            422,
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": body,
                }
            ],
        )
    return body


def error_middleware() -> Middleware:
    """ApiError -> JSON; aiohttp's own 404/405 -> FastAPI's ``{"detail": ...}``."""

    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.status, headers=exc.headers, dumps=dumps)
        except web.HTTPNotFound:
            return web.json_response({"detail": "Not Found"}, status=404)
        except web.HTTPMethodNotAllowed:
            return web.json_response({"detail": "Method Not Allowed"}, status=405)

    return mw
