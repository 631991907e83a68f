"""The OpenAPI document: served only when enabled, true to the routes, and held to by the relay.

schemathesis generates requests from code/openapi.yaml (positive and negative, a bounded and
deterministic number per operation) and sends them over HTTP to a relay on loopback backed by
the SpyCloud simulator and the local JWKS issuer: no answer may be a 5xx, and every answer must
conform to the document. XDR's contract answers auth failures with HTTP 200 and an error
envelope, so schemathesis's ``ignored_auth`` and ``negative_data_rejection`` checks (which want
401/403 and 4xx) are replaced by checks of that envelope.
"""

import json
from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from spycloud_relay.api import auth
from spycloud_relay.api.openapi import DOCUMENT, OpenApiDocumentError, load_document
from spycloud_relay.config import VERSION
from support import assert_valid_answer, assert_valid_refs, relay_settings, start_relay

EXAMPLES_PER_OPERATION = 25
SEED = 20241123

CONFIG = schemathesis.Config.from_dict(
    {
        'seed': SEED,
        'generation': {
            'mode': 'all',
            'max-examples': EXAMPLES_PER_OPERATION,
            'deterministic': True,
            'database': 'none',
        },
        'checks': {
            # XDR's contract: an auth failure is HTTP 200 with `authorization error`.
            'ignored_auth': {'enabled': False},
            # XDR's contract: a bad body is HTTP 200 with `invalid argument` (checked below).
            'negative_data_rejection': {'enabled': False},
            # Its only required header is the bearer token: a missing one is the auth case above.
            'missing_required_header': {'enabled': False},
        },
    }
)
SCHEMA = schemathesis.openapi.from_path(str(DOCUMENT), config=CONFIG)
SECURED = SCHEMA.include(operation_id=['health', 'observe', 'refer'])
ROUTE_METHODS = {'GET', 'POST', 'PUT', 'PATCH', 'DELETE'}


@pytest.fixture(scope='module')
def api_relay(spycloud_server, jwks):
    """One relay with the document enabled for all the generated cases (Hypothesis runs many
    examples per test, so a function-scoped relay would be shared by them anyway)."""
    # The limiter off: a generated tile-data case gathers 91 days of the simulator's tenant.
    relay = start_relay(
        relay_settings(spycloud_server, jwks, openapi_enabled=True, spycloud_rate_limit=0), jwks
    )
    yield relay
    relay.stop()


def body_of(response):
    return json.loads(response.text)


def is_negative_body(case):
    meta = case.meta
    return (
        meta is not None
        and meta.generation.mode == GenerationMode.NEGATIVE
        and meta.components.get(ParameterLocation.BODY) is not None
        and meta.components[ParameterLocation.BODY].mode == GenerationMode.NEGATIVE
    )


def own_request(response, case):
    """Checks also see the answers to requests some built-in checks send on their own (other
    methods, a header left out): only the case's own request is judged here."""
    return response.request.method == case.operation.method.upper()


def authorization_is_refused(ctx, response, case):
    """Without a valid token: the single fatal `authorization error`, as HTTP 200."""
    if not own_request(response, case):
        return None
    assert response.status_code == 200
    body = body_of(response)
    assert list(body) == ['errors'], body
    (error,) = body['errors']
    assert error['type'] == 'fatal' and error['code'] == 'authorization error', error
    assert error['message'].startswith('Authorization failed: '), error
    return True


def consistent_answers(token):
    """What JSON Schema cannot say: counts match docs, observe and refer answers meet XDR's
    contract, a bad body is `invalid argument`, /health with the valid token is ok, and a
    request that went without it (schemathesis leaves security headers out on purpose) is
    refused."""

    def answers_are_consistent(ctx, response, case):
        if not own_request(response, case):
            return None
        secured = case.operation.path in ('/health', '/observe/observables', '/refer/observables')
        if secured and response.request.headers.get('Authorization') != f'Bearer {token}':
            return authorization_is_refused(ctx, response, case)
        body = body_of(response)
        if case.operation.path == '/observe/observables':
            assert_valid_answer(body)
            for plural, entities in body.get('data', {}).items():
                # A verdict has no id of its own (CTIM): one per observable instead.
                ids = [doc.get('id') or json.dumps(doc['observable']) for doc in entities['docs']]
                assert entities['count'] == len(ids) == len(set(ids)), plural
            if is_negative_body(case):
                codes = [error['code'] for error in body.get('errors', [])]
                assert codes == ['invalid argument'], body
        if case.operation.path == '/refer/observables':
            assert_valid_refs(body)
            if is_negative_body(case):
                assert [error['code'] for error in body['errors']] == ['invalid argument'], body
        if case.operation.path == '/health':
            assert body == {'data': {'status': 'ok'}}, body
        return True

    return answers_are_consistent


@SCHEMA.parametrize()
def test_every_answer_conforms_with_a_valid_token(case, api_relay):
    token = api_relay.token()
    case.call_and_validate(
        base_url=api_relay.url,
        headers={'Authorization': f'Bearer {token}'},
        additional_checks=[consistent_answers(token)],
    )


@SECURED.parametrize()
def test_every_answer_conforms_without_a_valid_token(case, api_relay):
    """No Authorization header, or whatever schemathesis makes up for the bearer scheme."""
    case.call_and_validate(base_url=api_relay.url, additional_checks=[authorization_is_refused])


def refused_as_expired(token):
    def token_has_expired(ctx, response, case):
        if not authorization_is_refused(ctx, response, case):
            return None
        if response.request.headers.get('Authorization') == f'Bearer {token}':
            assert body_of(response)['errors'][0]['message'].endswith(auth.TOKEN_EXPIRED)
        return True

    return token_has_expired


@SECURED.parametrize()
def test_every_answer_conforms_with_an_expired_token(case, api_relay):
    expired = api_relay.token(iat=1_000_000_000, exp=1_000_000_600)
    case.call_and_validate(
        base_url=api_relay.url,
        headers={'Authorization': f'Bearer {expired}'},
        additional_checks=[refused_as_expired(expired)],
    )


# -- the document itself ----------------------------------------------------------------------


def test_document_is_served_as_json_when_enabled(api_relay):
    response = api_relay.post('/openapi.json')  # wrong method first: 405 with Allow
    assert response.status_code == 405
    assert 'GET' in response.headers['Allow']
    response = requests.get(api_relay.url + '/openapi.json', timeout=10)
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    assert response.json() == yaml.safe_load(DOCUMENT.read_text(encoding='utf-8'))


def test_document_is_not_served_when_disabled(relay):
    assert relay.settings.openapi_enabled is False
    response = requests.get(relay.url + '/openapi.json', timeout=10)
    assert response.status_code == 404
    (error,) = response.json()['errors']
    assert (error['type'], error['code']) == ('fatal', 'not found')


def test_document_describes_every_route_and_only_those(api_relay):
    """A route added to the app without the document (or the reverse) fails here."""
    served = set()
    for rule in api_relay.app.url_map.iter_rules():
        if rule.endpoint == 'static':
            continue
        for method in rule.methods & ROUTE_METHODS:
            served.add((method, rule.rule.rstrip('/') or '/'))
    document = load_document()
    described = {
        (method.upper(), path)
        for path, item in document['paths'].items()
        for method in item
        if method.upper() in ROUTE_METHODS
    }
    assert described == served


def test_document_is_a_valid_openapi_3_document():
    document = load_document()
    assert document['openapi'].startswith('3.')
    assert document['info']['version'] == VERSION
    for path, item in document['paths'].items():
        for method, operation in item.items():
            assert operation['responses'], (method, path)
            secured = (
                '/health',
                '/observe/observables',
                '/deliberate/observables',
                '/refer/observables',
                '/respond/observables',
                '/respond/trigger',
                '/tiles',
                '/tiles/tile',
                '/tiles/tile-data',
            )
            assert ('security' in operation) == (path in secured)
    # schemathesis refuses a document that does not validate against the OpenAPI schema.
    assert {op.ok().label for op in SCHEMA.get_all_operations()} == {
        'POST /health',
        'POST /observe/observables',
        'POST /deliberate/observables',
        'POST /refer/observables',
        'POST /respond/observables',
        'POST /respond/trigger',
        'POST /tiles',
        'POST /tiles/tile',
        'POST /tiles/tile-data',
        'POST /version',
        'GET /version',
        'GET /watchdog',
        'GET /openapi.json',
    }


def test_a_broken_document_stops_the_start_up(tmp_path):
    with pytest.raises(OpenApiDocumentError, match='cannot be read'):
        load_document(tmp_path / 'missing.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('openapi: [3.0\n', encoding='utf-8')
    with pytest.raises(OpenApiDocumentError, match='cannot be read'):
        load_document(broken)
    other = tmp_path / 'other.yaml'
    other.write_text('just: text\n', encoding='utf-8')
    with pytest.raises(OpenApiDocumentError, match='not an OpenAPI document'):
        load_document(other)
    assert Path(DOCUMENT).name == 'openapi.yaml'
