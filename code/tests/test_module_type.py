"""module_type.json and observables.json agree with what the relay really serves and reads."""

import base64
import json
from pathlib import Path

import pytest

from spycloud_relay.api.module_settings import ModuleSettings
from spycloud_relay.app import create_app
from spycloud_relay.config import XDR_JWKS_HOSTS, Settings

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it
ROOT = Path(__file__).resolve().parents[2]
MODULE_TYPE = json.loads((ROOT / 'module_type.json').read_text())
SPEC_FIELD_KEYS = {
    'key',
    'type',
    'label',
    'tooltip',
    'required',
    'group',
    'subtype',
    'options',
    'default_value',
    'beta',
    'strict-options',
}
SPEC_FIELD_TYPES = {'string', 'password', 'api_key', 'integer', 'boolean', 'options', 'device'}


def test_required_and_descriptive_fields():
    for name in ('title', 'default_name', 'short_description', 'description', 'tips'):
        assert isinstance(MODULE_TYPE[name], str) and MODULE_TYPE[name].strip()


def test_configuration_spec_fields_are_well_formed():
    spec = MODULE_TYPE['configuration_spec']
    for field in spec:
        assert set(field) <= SPEC_FIELD_KEYS
        assert field['type'] in SPEC_FIELD_TYPES
        assert field['key'].startswith('custom_') and field['label'] and field['tooltip']
    by_key = {f['key']: f for f in spec}
    assert by_key['custom_key']['type'] == 'api_key' and by_key['custom_key']['required'] is True
    assert by_key['custom_CTR_ENTITIES_LIMIT']['type'] == 'integer'
    assert by_key['custom_show_passwords']['type'] == 'boolean'
    severity = by_key['custom_min_severity']
    assert severity['type'] == 'options'
    assert [o['value'] for o in severity['options']] == ['2', '5', '20', '25']
    assert by_key['custom_lookback_days']['type'] == 'integer'


def test_every_form_field_reaches_module_settings():
    """XDR strips custom_; each field must change ModuleSettings, or it would be ignored."""
    claims = {'key': 'k'}
    baseline = ModuleSettings.from_claims(claims)
    samples = {'integer': [7], 'boolean': [True, False], 'api_key': ['other-key']}
    for field in MODULE_TYPE['configuration_spec']:
        name = field['key'][len('custom_') :]
        values = [o['value'] for o in field.get('options', ())] or samples[field['type']]
        changed = [ModuleSettings.from_claims({**claims, name: v}) for v in values]
        assert any(c != baseline for c in changed), field['key']
        assert not any(c.warnings for c in changed), field['key']  # each value is one it takes


def test_supported_apis_are_served_and_auth_is_rs256():
    props = MODULE_TYPE['properties']
    assert props['auth-type'] == 'configuration-token'
    assert props['configuration-token-alg'] == 'RS256'
    assert props['custom_jwks_host'] in XDR_JWKS_HOSTS
    routes = {rule.rule.lstrip('/') for rule in create_app(Settings()).url_map.iter_rules()}
    assert set(props['supported-apis']) == {
        'health',
        'observe/observables',
        'deliberate/observables',
        'refer/observables',
        'respond/observables',
        'respond/trigger',
        'tiles',
        'tiles/tile',
        'tiles/tile-data',
    }
    assert set(props['supported-apis']) <= routes
    assert {c['id'] for c in MODULE_TYPE['capabilities']} == {
        'health',
        'observe',
        'deliberate',
        'refer',
        'respond',
        'tiles',
    }


def test_logo_is_a_data_uri_image():
    prefix, _, payload = MODULE_TYPE['logo'].partition(',')
    assert prefix in ('data:image/svg+xml;base64', 'data:image/png;base64')
    assert base64.b64decode(payload, validate=True).lstrip().startswith((b'<svg', b'\x89PNG'))


@pytest.mark.parametrize('entry', json.loads((ROOT / 'observables.json').read_text()))
def test_sample_observables_are_valid_input(entry):
    assert set(entry) == {'type', 'value'} and entry['type'] and entry['value']
