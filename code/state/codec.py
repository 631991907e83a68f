"""Values to JSON and back (never pickle: a value read from Redis is data, not code).

The client's values are Catalogs, ``(list[BreachRecord], hits)`` and ``Evidence`` or None.
Records and catalogs keep the raw object SpyCloud sent, so ``from_api(raw)`` rebuilds them
exactly; plain JSON-like values (lists, tuples, dicts, numbers, strings) travel as they are.
A JSON object in the output is always a tagged value (``{"$": tag, ...}``), so nothing in the
data can pass for one.
"""

import json
from typing import Any

from spycloud.models import BreachRecord, Catalog, Evidence


class Undecodable(ValueError):
    """Bytes that are not a value of this codec: read as a cache miss."""


def encode(value: Any) -> bytes:
    """JSON bytes; TypeError for a type the codec does not know."""
    return json.dumps(_pack(value), separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def decode(data: bytes) -> Any:
    try:
        return _unpack(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise Undecodable(str(error)) from None


def _pack(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (BreachRecord, Catalog)):
        return {'$': type(value).__name__, 'fields': dict(value.fields)}
    if isinstance(value, Evidence):
        return {
            '$': 'Evidence',
            'hits': value.hits,
            'newest': _pack(value.newest),
            'worst_severity': value.worst_severity,
        }
    if isinstance(value, list):
        return [_pack(item) for item in value]
    if isinstance(value, tuple):
        return {'$': 'tuple', 'items': [_pack(item) for item in value]}
    if isinstance(value, dict):
        return {'$': 'dict', 'items': [[_pack(k), _pack(v)] for k, v in value.items()]}
    raise TypeError(f'the state codec cannot store a {type(value).__name__}')


def _unpack(packed):
    if isinstance(packed, list):
        return [_unpack(item) for item in packed]
    if not isinstance(packed, dict):
        return packed
    tag = packed['$']
    if tag == 'BreachRecord':
        return BreachRecord.from_api(packed['fields'])
    if tag == 'Catalog':
        return Catalog.from_api(packed['fields'])
    if tag == 'Evidence':
        return Evidence(
            hits=packed['hits'],
            newest=_unpack(packed['newest']),
            worst_severity=packed['worst_severity'],
        )
    if tag == 'tuple':
        return tuple(_unpack(item) for item in packed['items'])
    if tag == 'dict':
        return {_unpack(k): _unpack(v) for k, v in packed['items']}
    raise Undecodable(f'unknown tag {tag!r}')
