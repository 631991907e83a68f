from dataclasses import fields

import pytest

from spycloud_relay.api.module_settings import ModuleSettings, entities_limit, flag
from spycloud_relay.config import XDR_JWKS_HOSTS, ConfigError, Settings

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it


def test_defaults():
    settings = Settings.from_env({})
    assert settings.spycloud_api_url == 'https://api.spycloud.io/enterprise-v2/'
    assert settings.allowed_jwks_hosts == XDR_JWKS_HOSTS
    assert settings.lookup_deadline_s == 25
    assert settings.jwt_audience == ''


def test_environment_is_parsed():
    settings = Settings.from_env(
        {
            'SPYCLOUD_API_URL': 'http://127.0.0.1:1/enterprise-v2',
            'ALLOWED_JWKS_HOSTS': 'Visibility.amp.cisco.com, 127.0.0.1:8443,',
            'JWT_AUDIENCE': 'https://relay.example/',
            'LOOKUP_DEADLINE_S': '3.5',
            'SPYCLOUD_RETRIES': '0',
            'LOG_LEVEL': 'debug',
            'CATALOG_CACHE_SIZE': ' ',
        }
    )
    assert settings.spycloud_api_url == 'http://127.0.0.1:1/enterprise-v2/'
    assert settings.allowed_jwks_hosts == ('visibility.amp.cisco.com', '127.0.0.1:8443')
    assert settings.jwt_audience == 'https://relay.example'
    assert settings.lookup_deadline_s == 3.5
    assert settings.spycloud_retries == 0
    assert settings.catalog_cache_size == Settings().catalog_cache_size


@pytest.mark.parametrize(
    'env, fragment',
    [
        ({'SPYCLOUD_API_URL': 'ftp://x'}, 'SPYCLOUD_API_URL'),
        ({'SPYCLOUD_RETRIES': 'many'}, 'SPYCLOUD_RETRIES must be an integer'),
        ({'LOOKUP_DEADLINE_S': 'soon'}, 'LOOKUP_DEADLINE_S must be a number'),
        ({'LOOKUP_DEADLINE_S': '0'}, 'LOOKUP_DEADLINE_S must be greater than 0'),
        ({'SPYCLOUD_RETRIES': '-1'}, 'SPYCLOUD_RETRIES must not be negative'),
        ({'ALLOWED_JWKS_HOSTS': ' , '}, 'ALLOWED_JWKS_HOSTS'),
        ({'OPENAPI_ENABLED': 'perhaps'}, 'OPENAPI_ENABLED must be true or false'),
        ({'MAX_OBSERVABLES': '0'}, 'MAX_OBSERVABLES must be greater than 0'),
        ({'SPYCLOUD_RATE_LIMIT': '-1'}, 'SPYCLOUD_RATE_LIMIT must not be negative'),
        ({'SPYCLOUD_EMAIL_BATCH': '0'}, 'SPYCLOUD_EMAIL_BATCH must be from 1 to 10'),
        ({'SPYCLOUD_EMAIL_BATCH': '11'}, 'SPYCLOUD_EMAIL_BATCH must be from 1 to 10'),
    ],
)
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(env)


FLOAT_SETTINGS = [field.name.upper() for field in fields(Settings) if field.type is float]


def test_every_float_setting_is_checked():
    assert {'LOOKUP_DEADLINE_S', 'REDIS_TIMEOUT_S', 'RECORDS_CACHE_MAX_MB'} <= set(FLOAT_SETTINGS)


@pytest.mark.parametrize('raw', ['nan', 'inf', '-inf', 'NaN', ' Infinity '])
@pytest.mark.parametrize('name', FLOAT_SETTINGS)
def test_a_non_finite_number_is_refused_naming_the_setting(name, raw):
    with pytest.raises(ConfigError, match=f'^{name} must be a finite number, got '):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    'env, fragment',
    [
        ({'TRUSTED_PROXIES': '-1'}, 'TRUSTED_PROXIES must not be negative'),
        ({'TRUSTED_PROXIES': '1.5'}, 'TRUSTED_PROXIES must be an integer'),
        ({'RECORDS_CACHE_MAX_MB': '0'}, 'RECORDS_CACHE_MAX_MB must be greater than 0'),
        ({'CATALOG_CACHE_MAX_MB': '-2'}, 'CATALOG_CACHE_MAX_MB must be greater than 0'),
        ({'TILE_CACHE_MAX_MB': 'lots'}, 'TILE_CACHE_MAX_MB must be a number'),
    ],
)
def test_proxy_and_cache_bounds_are_checked(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(env)


@pytest.mark.parametrize(
    'raw, limit',
    [
        (1, 1),
        ('250', 250),
        (1000, 1000),
        (1001, 1000),
        (0, 100),
        (-5, 100),
        ('x', 100),
        (None, 100),
        (True, 100),
        (12.7, 12),
        ('  40 ', 40),
    ],
)
def test_entities_limit(raw, limit):
    assert entities_limit(raw) == limit


@pytest.mark.parametrize(
    'raw, value',
    [
        (True, True),
        (False, False),
        ('true', True),
        ('YES', True),
        ('0', False),
        ('off', False),
        ('maybe', None),
        (None, None),
        (1, None),
    ],
)
def test_flag(raw, value):
    assert flag(raw, default=None) is value


def test_module_settings_from_claims():
    settings = ModuleSettings.from_claims(
        {'key': ' k ', 'CTR_ENTITIES_LIMIT': '5', 'show_passwords': 'true'}
    )
    assert settings == ModuleSettings(api_key='k', entities_limit=5, show_passwords=True)


def test_module_settings_helper_rejects_bad_claims():
    with pytest.raises(KeyError):
        ModuleSettings.from_claims({})
    with pytest.raises(KeyError):
        ModuleSettings.from_claims({'key': 42})


@pytest.mark.parametrize('raw, value', [('true', True), ('ON', True), ('0', False), ('no', False)])
def test_boolean_settings(raw, value):
    assert Settings.from_env({'METRICS_ENABLED': raw}).metrics_enabled is value
