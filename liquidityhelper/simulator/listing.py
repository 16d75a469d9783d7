"""Bitcart's list endpoints: ``query=`` search, sorting and limit/offset pages.

Rules as in Bitcart's ``SearchQuery`` and ``OffsetPagination``: space-separated terms,
``key:value`` filters a column (values of one key are ORed, keys ANDed; unknown keys are
ignored), ``metadata.KEY:VALUE`` compares the JSON field as text, the rest is a
case-insensitive regex over every column. Only ``query=`` filters: a plain ``?store_id=``
is ignored like the real one. ``next``/``previous`` are absolute URLs built like
Starlette's ``include_query_params``/``remove_query_params``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from yarl import URL


class QueryParamError(Exception):
    """A bad list parameter (FastAPI answers 422 with a pydantic error list)."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        self.detail = detail
        super().__init__(str(detail))


@dataclass(slots=True)
class Search:
    filters: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    metadata: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    text: str = ""
    start: datetime | None = None
    end: datetime | None = None


def parse_search(query: str, now: datetime) -> Search:
    out = Search()
    words = []
    for item in query.split():
        parts = item.split(":")
        quoted = item[0] == '"' and item[-1] == '"'
        if len(parts) >= 2 and not quoted:
            key, value = parts[0].lower(), ":".join(parts[1:])
            if key.startswith("metadata."):
                out.metadata[key[9:]].append(value)
            else:
                out.filters[key].append(value)
        else:
            words.append(item[1:-1] if quoted else item)
    out.text = " ".join(words)
    out.start = _parse_date(out.filters.pop("start_date", []), now)
    out.end = _parse_date(out.filters.pop("end_date", []), now)
    out.filters.pop("created", None)
    return out


def _parse_date(values: list[str], now: datetime) -> datetime | None:
    if not values:
        return None
    text = values[0]
    units = {"h": 1 / 24, "d": 1, "w": 7, "m": 30, "y": 360}
    if len(text) >= 3 and text[0] == "-" and text[-1] in units and text[1:-1].isdigit():
        return now - timedelta(days=int(text[1:-1]) * units[text[-1]])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_text(value: Any) -> str | None:
    """A JSON value as Postgres ``->>`` gives it."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _created(row: dict[str, Any]) -> datetime | None:
    text = row.get("created")
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(row: dict[str, Any], search: Search) -> bool:
    for key, values in search.filters.items():
        scalar = key in row and not isinstance(row[key], dict | list)
        if scalar and as_text(row[key]) not in values:
            return False
    meta = row.get("metadata") or {}
    for key, values in search.metadata.items():
        if as_text(meta.get(key)) not in values:
            return False
    created = _created(row)
    if search.start and (created is None or created < search.start):
        return False
    if search.end and (created is None or created > search.end):
        return False
    if search.text:
        pattern = re.compile("|".join(re.escape(p) for p in search.text.split("|")), re.I)
        columns = [as_text(v) for v in row.values() if not isinstance(v, list)]
        if not any(c is not None and pattern.search(c) for c in columns):
            return False
    return True


def _int_param(params: dict[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryParamError(
            [
                {
                    "type": "int_parsing",
                    "loc": ["query", name],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": raw,
                }
            ]
        ) from None
    if value < lo:
        raise QueryParamError(
            [
                {
                    "type": "greater_than_equal",
                    "loc": ["query", name],
                    "msg": f"Input should be greater than or equal to {lo}",
                    "input": raw,
                    "ctx": {"ge": lo},
                }
            ]
        )
    if hi is not None and value > hi:
        raise QueryParamError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ["query", name],
                    "msg": f"Input should be less than or equal to {hi}",
                    "input": raw,
                    "ctx": {"le": hi},
                }
            ]
        )
    return value


def _bool_param(params: dict[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")


def _with_params(url: URL, **updates: int) -> str:
    """Starlette's ``include_query_params``: updated keys move to the end."""
    pairs = [
        (k, v)
        for k, v in parse_qsl(url.raw_query_string, keep_blank_values=True)
        if k not in updates
    ]
    pairs += [(k, str(v)) for k, v in updates.items()]
    return str(url.with_query(None)) + "?" + urlencode(pairs)


def _without(url: URL, key: str) -> str:
    pairs = [(k, v) for k, v in parse_qsl(url.raw_query_string, keep_blank_values=True) if k != key]
    base = str(url.with_query(None))
    return base + ("?" + urlencode(pairs) if pairs else "")


def paginate(
    rows: list[dict[str, Any]], params: dict[str, str], url: URL, now: datetime
) -> dict[str, Any]:
    """Filter, sort and cut ``rows`` (already the user's own) into Bitcart's envelope."""
    offset = _int_param(params, "offset", 0, 0, None)
    limit = _int_param(params, "limit", 5, -1, 1000)
    query = params.get("query", "")
    if _bool_param(params, "multiple", False):
        query = query.replace(",", "|")
    sort = params.get("sort", "")
    desc = _bool_param(params, "desc", True)
    if not sort:
        sort, desc = "created", True
    search = parse_search(query, now)
    selected = [r for r in rows if matches(r, search)] if query.strip() else list(rows)
    if selected and sort not in selected[0]:
        selected = []  # Bitcart adds WHERE false for an unknown sort column
    selected.sort(key=lambda r: (r.get(sort) is None, _sortable(r.get(sort))), reverse=desc)
    count = len(selected)
    page = selected[offset:] if limit == -1 else selected[offset : offset + limit]
    if _bool_param(params, "autocomplete", False):
        page = [{"id": r["id"], "name": r.get("name", r["id"])} for r in page]
    nxt = (
        None
        if limit == -1 or offset + limit >= count
        else _with_params(url, limit=limit, offset=offset + limit)
    )
    if limit == -1 or offset <= 0:
        prev = None
    elif offset - limit <= 0:
        prev = _without(url, "offset")
    else:
        prev = _with_params(url, limit=limit, offset=offset - limit)
    return {"result": page, "count": count, "next": nxt, "previous": prev}


def count_matching(rows: list[dict[str, Any]], params: dict[str, str], now: datetime) -> int:
    query = params.get("query", "")
    if not query.strip():
        return len(rows)
    search = parse_search(query, now)
    return sum(1 for r in rows if matches(r, search))


def _sortable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return (3, json.dumps(value, sort_keys=True))
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, str(value)) if value is not None else (2, "")
