"""The routes' input: observe's JSON array of CTIM observables, and the JSON objects of a
tile request and a response trigger, whose fields are strings or absent."""

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from flask import Request
from gunicorn.http.errors import ParseException
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from spycloud_relay.api.services import services
from spycloud_relay.config import Settings
from spycloud_relay.errors import InvalidArgumentError
from spycloud_relay.spycloud.models import Observable

NOT_BLANK = validate.Length(min=1, error='Field may not be blank.')
UNREADABLE_BODY = (
    'The request body could not be read: malformed chunked encoding or a body cut short.'
)
# What reading a body raises when its bytes do not add up: werkzeug's wrapper of the server's
# stream turns the server's OSError and ValueError into ClientDisconnected; gunicorn's chunk
# and trailer errors (ParseException) pass through it.
BODY_READ_ERRORS = (ClientDisconnected, OSError, ParseException)


class ObservableSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=NOT_BLANK)
    value = fields.String(required=True, validate=NOT_BLANK)

    @post_load
    def observable(self, data: Mapping[str, str], **_: Any) -> Observable:
        """The checked JSON object as the Observable the relay passes on: made once, here."""
        return Observable.of(data)


OBSERVABLES = ObservableSchema(many=True)
TEXT_ERRORS: dict[str, Any] = {
    'invalid': 'Must be a string.',
    'null': 'Must be a string, not null.',
}


def text(**kwargs: Any) -> fields.String:
    """A field that is a string when present: a list, an object, a number or null is refused
    by name (before the route compares it with its known values, which a list cannot be)."""
    return fields.String(error_messages=dict(TEXT_ERRORS), **kwargs)


class TileRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    tile_id = text()
    period = text()


class TriggerSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    action_id = text(data_key='action-id')
    observable_type = text()
    observable_value = text()
    watchlist_type = text()


TILE_REQUEST, TRIGGER = TileRequestSchema(), TriggerSchema()


def load_fields(schema: Schema, payload: dict[str, Any]) -> dict[str, str]:
    """The JSON object's fields the schema names, each checked for its type; a field of
    another type is ``invalid argument`` naming it. Absent fields stay absent."""
    try:
        loaded: dict[str, str] = schema.load(payload)  # the schemas' fields are strings
        return loaded
    except ValidationError as error:
        raise InvalidArgumentError(
            f'Invalid JSON payload received. {describe(error.messages)}.'
        ) from None


MAX_ERRORS_SHOWN = 10


def parse_observables(
    request: Request, supported_types: Collection[str], limits: Settings | None = None
) -> list[Observable]:
    """Lower-cased types, supported ones only, duplicates removed, order kept.

    The limits (``Settings``, by default the app's) apply to what the relay would look up:
    observables of unsupported types are dropped first, so a long URL or a hundred hashes in
    an investigation do not fail the e-mail lookups beside them. The count is of distinct
    observables, after de-duplication; a value's length is counted in characters, after
    surrounding white space is removed.
    """
    limits = limits or services().settings
    payload = read_json(request, limits.max_content_length)
    if payload is None:
        raise InvalidArgumentError(
            'Invalid JSON payload received. The body must be a JSON array of observables.'
        )
    try:
        observables: list[Observable] = OBSERVABLES.load(payload)
    except ValidationError as error:
        raise InvalidArgumentError(
            f'Invalid JSON payload received. {describe(error.messages)}.'
        ) from None
    unique = _distinct(observables, supported_types, limits.max_value_length)
    if len(unique) > limits.max_observables:
        raise InvalidArgumentError(
            f'Invalid JSON payload received. Too many observables: {len(unique)} distinct '
            f'observables to look up; the limit is {limits.max_observables} per request '
            '(MAX_OBSERVABLES).'
        )
    return unique


def _distinct(
    observables: Iterable[Observable], supported_types: Collection[str], max_length: int
) -> list[Observable]:
    """The supported observables, each once (equal ones are one), in order."""
    unique: dict[Observable, None] = {}
    for index, observable in enumerate(observables):
        if observable.type not in supported_types or not observable.value:
            continue
        if len(observable.value) > max_length:
            raise InvalidArgumentError(
                f'Invalid JSON payload received. Observable {index} ({observable.type}) has a '
                f'value of {len(observable.value)} characters; the limit is {max_length} '
                '(MAX_VALUE_LENGTH).'
            )
        unique.setdefault(observable)
    return list(unique)


def read_json(request: Request, limit: int) -> Any:
    """The body as JSON (whatever its Content-Type), or None when it is not JSON.

    A body over ``limit`` bytes raises RequestEntityTooLarge (answered as ``invalid
    argument``), a streamed one too. werkzeug stops reading a stream at the request's limit
    and hands over what it read (which could parse as a shorter, valid list), unable to tell
    a body of exactly the limit from a longer one: reading up to one byte past it can.
    A body that cannot be read (malformed chunks, or fewer bytes than announced) is an
    ``invalid argument`` too, in words of the relay's: the error's own text may quote the body.
    """
    request.max_content_length = limit + 1  # this request only; MAX_CONTENT_LENGTH stays
    try:
        data = request.get_data(cache=False)
    except BODY_READ_ERRORS:
        raise InvalidArgumentError(UNREADABLE_BODY) from None
    if len(data) > limit:
        raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return None


def describe(messages: object) -> str:
    """marshmallow's field errors as JSON, the first few only: a body of 100,000 bad items
    must not come back as a 10 MB error message."""
    if isinstance(messages, dict) and len(messages) > MAX_ERRORS_SHOWN:
        shown = dict(list(messages.items())[:MAX_ERRORS_SHOWN])
        more = len(messages) - MAX_ERRORS_SHOWN
        return f'{json.dumps(shown, default=str)} (and {more} more items with errors)'
    return json.dumps(messages, default=str)
