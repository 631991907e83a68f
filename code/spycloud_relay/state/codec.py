"""Values to JSON and back (never pickle: a value read from Redis is data, not code).

Plain JSON-like values (lists, tuples, dicts, numbers, strings, None) travel as they are; a
domain type travels once it is registered (``register``) by the module that defines it, with
how to turn it into such values and back. SpyCloud's records and catalogs register with the raw
object SpyCloud sent, so ``from_api(raw)`` rebuilds them exactly. A JSON object in the output is
always a tagged value (``{"$": tag, ...}``), so nothing in the data can pass for one.

The store knows no domain type itself: ``state/`` imports nothing from the layers above it.
"""

import json
from collections.abc import Callable
from typing import Any, NamedTuple


class Undecodable(ValueError):
    """Bytes that are not a value of this codec: read as a cache miss."""


class _Kind(NamedTuple):
    type: type
    tag: str
    pack: Callable[[Any], Any]
    unpack: Callable[[Any], Any]


_BY_TYPE: dict[type, _Kind] = {}
_BY_TAG: dict[str, _Kind] = {}
_BUILT_IN = ('tuple', 'dict')


def register(
    kind: type, tag: str, pack: Callable[[Any], Any], unpack: Callable[[Any], Any]
) -> None:
    """Let values of ``kind`` be stored: ``pack(value)`` gives what is written, as JSON takes it
    (written as it is, so a kind holding another packs that one itself), and ``unpack``
    rebuilds the value from it."""
    if tag in _BUILT_IN or _BY_TAG.get(tag, _Kind(kind, tag, pack, unpack)).type is not kind:
        raise ValueError(f'the state codec already has a kind tagged {tag!r}')
    _BY_TYPE[kind] = _BY_TAG[tag] = _Kind(kind, tag, pack, unpack)


def encode(value: Any) -> bytes:
    """JSON bytes; TypeError for a type the codec does not know."""
    return json.dumps(_pack(value), separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def decode(data: bytes) -> Any:
    try:
        return _unpack(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise Undecodable(str(error)) from None


def _pack(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    kind = _BY_TYPE.get(type(value))
    if kind is not None:
        return {'$': kind.tag, 'value': kind.pack(value)}
    if isinstance(value, list):
        return [_pack(item) for item in value]
    if isinstance(value, tuple):
        return {'$': 'tuple', 'items': [_pack(item) for item in value]}
    if isinstance(value, dict):
        return {'$': 'dict', 'items': [[_pack(k), _pack(v)] for k, v in value.items()]}
    raise TypeError(f'the state codec cannot store a {type(value).__name__}')


def _unpack(packed: Any) -> Any:
    if isinstance(packed, list):
        return [_unpack(item) for item in packed]
    if not isinstance(packed, dict):
        return packed
    tag = packed['$']
    if tag == 'tuple':
        return tuple(_unpack(item) for item in packed['items'])
    if tag == 'dict':
        return {_unpack(k): _unpack(v) for k, v in packed['items']}
    kind = _BY_TAG.get(tag)
    if kind is None:
        raise Undecodable(f'unknown tag {tag!r}')
    return kind.unpack(packed['value'])
