"""The URL a token's audience must name when JWT_AUDIENCE is unset, as the image serves it
(gunicorn with gunicorn_conf.py): X-Forwarded-* headers count only from the TRUSTED_PROXIES
proxies nearest the relay, so a caller cannot pass another relay's token off as this one's.
"""

import pytest
import requests

from localrelay import gunicorn_relay
from spycloud_relay.api import auth
from support import RelayAt, refused

OTHER_RELAY = 'https://relay-b.example'  # the URL another relay is registered at in XDR
OK = {'data': {'status': 'ok'}}


@pytest.fixture(scope='module')
def direct(spycloud_server, jwks):
    """No proxy trusted (the default): the URL is the one the socket received."""
    with gunicorn_relay(spycloud_server, jwks, JWT_AUDIENCE='', WEB_CONCURRENCY=1) as url:
        yield RelayAt(url, jwks)


@pytest.fixture(scope='module')
def behind_a_proxy(spycloud_server, jwks):
    """One proxy trusted: the last value of each X-Forwarded-* header is its."""
    with gunicorn_relay(
        spycloud_server, jwks, JWT_AUDIENCE='', WEB_CONCURRENCY=1, TRUSTED_PROXIES=1
    ) as url:
        yield RelayAt(url, jwks)


def health(relay, aud, headers=None):
    token = relay.issuer.mint(aud)
    return requests.post(
        relay.url + '/health',
        headers={'Authorization': f'Bearer {token}', **(headers or {})},
        timeout=30,
    )


FORGED = [
    {'Host': 'relay-b.example', 'X-Forwarded-Proto': 'https'},
    {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'relay-b.example'},
    {
        'Host': 'relay-b.example',
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'relay-b.example',
        'X-Forwarded-Port': '443',
    },
]


@pytest.mark.parametrize('headers', FORGED, ids=['host', 'forwarded-host', 'all'])
def test_another_relays_token_with_forged_headers_is_refused(direct, headers):
    assert refused(health(direct, OTHER_RELAY, headers)) == auth.WRONG_AUDIENCE


def test_a_token_for_the_url_called_is_accepted(direct, behind_a_proxy):
    assert health(direct, direct.url).json() == OK
    assert health(behind_a_proxy, behind_a_proxy.url).json() == OK


def test_forwarded_headers_count_only_from_trusted_proxies(direct, behind_a_proxy):
    """What the proxy in front says is the URL: believed with one trusted proxy, not without."""
    proxied = {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'relay-b.example'}
    assert health(behind_a_proxy, OTHER_RELAY, proxied).json() == OK
    assert refused(health(behind_a_proxy, behind_a_proxy.url, proxied)) == auth.WRONG_AUDIENCE
    assert refused(health(direct, OTHER_RELAY, proxied)) == auth.WRONG_AUDIENCE
    assert health(direct, direct.url, proxied).json() == OK


def test_values_a_client_added_before_the_trusted_proxy_are_ignored(behind_a_proxy):
    """The client's own X-Forwarded-* come first in the list; the one proxy adds the last."""
    host = behind_a_proxy.url.removeprefix('http://')
    chained = {'X-Forwarded-Proto': 'https, http', 'X-Forwarded-Host': f'relay-b.example, {host}'}
    assert refused(health(behind_a_proxy, OTHER_RELAY, chained)) == auth.WRONG_AUDIENCE
    assert health(behind_a_proxy, behind_a_proxy.url, chained).json() == OK
