"""XDR's response shapes: ``{"data": ...}`` and ``{"errors": [...], "data"?: ...}``."""
from flask import jsonify


def data_response(data, warnings=()):
    body = {'data': data}
    if warnings:
        body['errors'] = unique_json(warnings)
    return jsonify(body)


def error_response(errors, data=None, status=200):
    body = {'errors': unique_json(errors)}
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
