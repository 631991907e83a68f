"""XDR's response shapes: ``{"data": ...}`` and ``{"errors": [...], "data"?: ...}``."""
from flask import jsonify

from api.telemetry import note_outcome
from errors import FATAL, envelope


def data_response(data, warnings=()):
    note_outcome('partial' if warnings else 'ok')
    return jsonify(envelope(data, warnings))


def error_response(errors, data=None, status=200):
    fatal = [e for e in errors if e.type == FATAL]
    note_outcome(fatal[0].code if fatal else 'partial')
    body = envelope(data or {}, errors)
    if not data:
        body.pop('data', None)
    response = jsonify(body)
    response.status_code = status
    return response


def answer_response(answer):
    """An observe-style Answer: its data beside its warnings, or beside its fatal errors."""
    if answer.fatal:
        return error_response(answer.errors, data=answer.data)
    return data_response(answer.data, answer.warnings)
