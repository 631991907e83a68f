"""The observe input: a JSON array of CTIM observables."""
import json

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from api.errors import InvalidArgumentError

NOT_BLANK = validate.Length(min=1, error='Field may not be blank.')


class ObservableSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=NOT_BLANK)
    value = fields.String(required=True, validate=NOT_BLANK)


OBSERVABLES = ObservableSchema(many=True)


def parse_observables(request, supported_types):
    """Lower-cased types, supported ones only, duplicates removed, order kept."""
    payload = request.get_json(force=True, silent=True, cache=False)
    if payload is None:
        raise InvalidArgumentError('Invalid JSON payload received. '
                                   'The body must be a JSON array of observables.')
    try:
        observables = OBSERVABLES.load(payload)
    except ValidationError as error:
        raise InvalidArgumentError(
            f'Invalid JSON payload received. {json.dumps(error.messages, default=str)}.'
        ) from None
    unique = {}
    for observable in observables:
        kind, value = observable['type'].strip().lower(), observable['value'].strip()
        if kind in supported_types and value:
            unique.setdefault((kind, value), {'type': kind, 'value': value})
    return list(unique.values())
