"""XDR's response shapes: ``{"data": ...}`` and ``{"errors": [...], "data"?: ...}``."""
from flask import jsonify

from api.telemetry import note_outcome


def data_response(data, warnings=()):
    body = {'data': data}
    if warnings:
        body['errors'] = unique_json(warnings)
    note_outcome('partial' if warnings else 'ok')
    return jsonify(body)


def error_response(errors, data=None, status=200):
    body = {'errors': unique_json(errors)}
    fatal = [e for e in body['errors'] if e['type'] == 'fatal']
    note_outcome(fatal[0]['code'] if fatal else 'partial')
    if data:
        body['data'] = data
    response = jsonify(body)
    response.status_code = status
    return response


def unique_json(errors):
    """The same warning from several lookups is said once."""
    seen, out = set(), []
    for error in errors:
        doc = error.json()
        key = tuple(doc.items())
        if key not in seen:
            seen.add(key)
            out.append(doc)
    return out
