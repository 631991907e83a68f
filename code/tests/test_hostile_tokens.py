"""Hostile tokens and hostile key servers: always the envelope, always on time, never a fetch
from a host the allow-list does not name.

A ``Canary`` (tests/support.py) is an HTTPS server on loopback that presents a certificate the
relay trusts and serves the issuer's real keys: had the relay been tricked into fetching keys
from it, the forged token would verify. Its connection count of 0 is the proof it was not.
"""

import base64
import hashlib
import hmac
import json
import socket
import threading
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from spycloud_relay.api import auth
from spycloud_relay.api.jwks import MAX_JWKS_BYTES
from support import (
    Canary,
    refused,
    relay_settings,
    send_raw,
    start_relay,
    stopped_afterwards,
    wait_until,
)

JWKS_TIMEOUT = 1.0
MARGIN = 1.0  # scheduling slack on a loaded CI machine; far below any unbounded wait


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode()


def unsigned(header, claims, signature=b''):
    return f'{b64(header)}.{b64(claims)}.{b64(signature) if signature else ""}'


def claims_for(relay, jwks, **extra):
    now = int(time.time())
    claims = {
        'jwks_host': jwks.jwks_host,
        'aud': relay.url,
        'key': 'k',
        'iat': now,
        'exp': now + 600,
    }
    claims.update(extra)
    return claims


def hmac_token(header, claims, secret, digest=hashlib.sha256):
    signing_input = f'{b64(header)}.{b64(claims)}'
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f'{signing_input}.{b64(signature)}'


@pytest.fixture(scope='module')
def relay(spycloud_server, jwks):
    """One relay for the tests of this module that only send tokens to be refused (and cache
    nothing that matters); tests that count fetches or change keys use ``make_relay``."""
    server = start_relay(relay_settings(spycloud_server, jwks), jwks)
    yield server
    server.stop()


@pytest.fixture
def canaries(jwks):
    """Start canaries for one test; all are stopped afterwards."""
    with stopped_afterwards(lambda mode='jwks', **kwargs: Canary(jwks, mode, **kwargs)) as start:
        yield start


@pytest.fixture(scope='module')
def module_canary(jwks):
    canary = Canary(jwks, 'jwks')
    yield canary
    canary.stop()


# -- forged signatures ------------------------------------------------------------------------


@pytest.mark.parametrize('alg', ['none', 'None', 'NONE', 'nOnE', 'HS256'])
@pytest.mark.parametrize('signature', [b'', b'anything'])
def test_alg_none_or_a_made_up_signature_is_refused(relay, jwks, alg, signature):
    token = unsigned(
        {'alg': alg, 'kid': jwks.kid, 'typ': 'JWT'}, claims_for(relay, jwks), signature
    )
    assert refused(relay.post('/health', token=token)) == auth.WRONG_KEY


def _public_secrets(jwks):
    public = jwks.private_key().public_key()
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    (served,) = [k for k in jwks.jwks()['keys'] if k['kid'] == jwks.kid]
    return {
        'spki-pem': spki,
        'spki-pem-stripped': spki.strip(),
        'pkcs1-pem': pkcs1,
        'jwk-json': json.dumps(served).encode(),
        'jwk-n': served['n'].encode(),
        'der': public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


@pytest.mark.parametrize(
    'form', ['spki-pem', 'spki-pem-stripped', 'pkcs1-pem', 'jwk-json', 'jwk-n', 'der']
)
@pytest.mark.parametrize(
    'alg,digest', [('HS256', hashlib.sha256), ('HS384', hashlib.sha384), ('HS512', hashlib.sha512)]
)
def test_hmac_signed_with_the_served_public_key_is_refused(relay, jwks, form, alg, digest):
    """The classic algorithm confusion: the public key (anyone can fetch it) as HMAC secret."""
    secret = _public_secrets(jwks)[form]
    token = hmac_token(
        {'alg': alg, 'kid': jwks.kid, 'typ': 'JWT'}, claims_for(relay, jwks), secret, digest
    )
    assert refused(relay.post('/health', token=token)) == auth.WRONG_KEY
    # The same header with RS256 (the only accepted algorithm) and that HMAC is refused too.
    token = hmac_token({'alg': 'RS256', 'kid': jwks.kid}, claims_for(relay, jwks), secret, digest)
    assert refused(relay.post('/health', token=token)) == auth.WRONG_KEY


@pytest.mark.parametrize('alg', ['PS256', 'RS384', 'RS512'])
def test_other_rsa_algorithms_with_the_real_key_are_refused(relay, jwks, alg):
    """Only RS256: a real signature by the real key under another algorithm is not accepted."""
    token = jwks.mint(relay.url, alg=alg, signing_key=jwks.private_key())
    assert refused(relay.post('/health', token=token)) == auth.WRONG_KEY
    assert relay.health() == {'data': {'status': 'ok'}}  # the same key with RS256 works


def test_signature_from_another_key_is_refused(relay, jwks):
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwks.mint(relay.url, signing_key=forged)  # the issuer's kid, someone else's key
    assert refused(relay.post('/health', token=token)) == auth.WRONG_KEY


def test_signature_of_another_token_is_refused(relay, jwks):
    mine = relay.token(key='mine')
    theirs = relay.token(key='theirs')
    spliced = '.'.join(mine.split('.')[:2] + theirs.split('.')[2:])
    assert refused(relay.post('/health', token=spliced)) == auth.WRONG_KEY


@pytest.mark.parametrize(
    'change',
    [
        {'key': 'someone-elses-key'},
        {'exp': 2**40},
        {'show_passwords': True},
        {'CTR_ENTITIES_LIMIT': 1000},
        {'aud': ['{url}']},  # the same meaning in other bytes: still not what was signed
    ],
)
def test_tampered_payload_is_refused(relay, jwks, change):
    header, payload, signature = relay.token().split('.')
    claims = json.loads(base64.urlsafe_b64decode(payload + '=='))
    claims.update(json.loads(json.dumps(change).replace('{url}', relay.url)))
    tampered = '.'.join([header, b64(claims), signature])
    assert refused(relay.post('/health', token=tampered)) == auth.WRONG_KEY


def test_tampered_header_is_refused(make_relay, jwks):
    other = jwks.add_key()  # served too, but it did not sign the token
    relay = make_relay()
    header, payload, signature = relay.token().split('.')
    swapped = b64({'alg': 'RS256', 'kid': other, 'typ': 'JWT'})
    assert (
        refused(relay.post('/health', token=f'{swapped}.{payload}.{signature}')) == auth.WRONG_KEY
    )


def test_embedded_jwk_and_key_urls_are_ignored(relay, jwks, canaries):
    """``jwk``, ``jku`` and ``x5u`` headers name keys or places the relay must not trust."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    canary = canaries('jwks', document={'keys': [dict(jwk, kid='attacker', alg='RS256')]})
    key_url = f'https://{canary.host}/.well-known/jwks'
    forged = jwks.mint(
        relay.url,
        signing_key=attacker,
        headers={'jwk': dict(jwk, kid=jwks.kid), 'jku': key_url, 'x5u': key_url},
    )
    assert refused(relay.post('/health', token=forged)) == auth.WRONG_KEY
    by_url = jwks.mint(
        relay.url, kid='attacker', signing_key=attacker, headers={'jku': key_url, 'x5u': key_url}
    )
    assert refused(relay.post('/health', token=by_url)) == auth.KID_NOT_FOUND
    assert canary.connections == 0


# -- time and audience ------------------------------------------------------------------------


def test_expired(relay):
    now = int(time.time())
    assert refused(relay.post('/health', exp=now - 5)) == auth.TOKEN_EXPIRED
    assert refused(relay.post('/health', iat=now - 7200, exp=now - 3600)) == auth.TOKEN_EXPIRED


def test_not_yet_valid(relay):
    now = int(time.time())
    assert refused(relay.post('/health', nbf=now + 60)) == auth.TOKEN_NOT_YET_VALID
    assert refused(relay.post('/health', iat=now + 3600)) == auth.TOKEN_NOT_YET_VALID


@pytest.mark.parametrize('claim', ['exp', 'nbf', 'iat'])
@pytest.mark.parametrize('value', ['soon', [1], {'t': 1}, float('nan')])
def test_time_claims_of_the_wrong_type_are_refused(relay, claim, value):
    assert refused(relay.post('/health', **{claim: value})) == auth.WRONG_KEY


@pytest.mark.parametrize(
    'aud',
    [
        None,  # no aud claim at all
        'https://other.example',
        '{url}/',
        '{url}.evil.test',
        '{url}/evil',
        ['https://other.example'],
        [],
        123,
        {'aud': '{url}'},
    ],
)
def test_wrong_audience(relay, aud):
    if isinstance(aud, str):
        aud = aud.format(url=relay.url)
    elif isinstance(aud, dict):
        aud = {'aud': relay.url}
    assert refused(relay.post('/health', aud=aud)) == auth.WRONG_AUDIENCE


# -- kids -------------------------------------------------------------------------------------


@pytest.mark.parametrize('kid', ['nope', '', '../../.well-known/jwks', 'k' * 8000, 'ключ', '\x00'])
def test_unknown_kid(relay, jwks, kid):
    assert refused(relay.post('/health', token=jwks.mint(relay.url, kid=kid))) == auth.KID_NOT_FOUND


@pytest.mark.parametrize('kid', [1, ['a'], {'kid': 'x'}, True])
def test_kid_that_is_not_a_string(relay, jwks, kid):
    _, payload, signature = relay.token().split('.')
    header = b64({'alg': 'RS256', 'typ': 'JWT', 'kid': kid})
    reason = refused(relay.post('/health', token=f'{header}.{payload}.{signature}'))
    assert reason in (auth.KID_NOT_FOUND, auth.WRONG_JWT_STRUCTURE)


def test_missing_kid(relay):
    _, payload, signature = relay.token().split('.')
    no_kid = b64({'alg': 'RS256', 'typ': 'JWT'})
    assert (
        refused(relay.post('/health', token=f'{no_kid}.{payload}.{signature}'))
        == auth.KID_NOT_FOUND
    )


def test_a_stream_of_unknown_kids_fetches_the_keys_once(make_relay, jwks):
    """Cold (the first forged kid fetches) and warm (keys cached): refreshes wait for the
    minimum interval, and the real key keeps working from the one fetch."""
    relay = make_relay()
    jwks.reset_stats()
    for n in range(20):
        if n == 10:
            assert relay.health() == {'data': {'status': 'ok'}}
        assert (
            refused(relay.post('/health', token=jwks.mint(relay.url, kid=f'forged-{n}')))
            == auth.KID_NOT_FOUND
        )
    assert jwks.requests == 1


# -- malformed and oversized tokens -----------------------------------------------------------

NOT_UTF8 = b64(b'\xff\xfe')


@pytest.mark.parametrize(
    'token',
    [
        'abc',
        'x' * 20000,
        'a.b',
        'a.b.c',
        'a.b.c.d',
        '...',
        f'{b64({"alg": "RS256"})}.{b64([1, 2])}.c2ln',
        f'{b64({"alg": "RS256"})}.{b64("text")}.c2ln',
        f'{b64([1])}.{b64({"jwks_host": "x"})}.c2ln',
        f'{b64(b"[" * 6000 + b"]" * 6000)}.{b64({})}.c2ln',
        f'{b64({"alg": "RS256"})}.{b64(b"{" + b"[" * 6000)}.c2ln',
        f'{b64({"alg": "RS256"})}.!!!!.c2ln',
        f'{b64({"alg": "RS256"})}.{NOT_UTF8}.c2ln',
    ],
)
def test_malformed_tokens(relay, token):
    assert refused(relay.post('/health', token=token)) == auth.WRONG_JWT_STRUCTURE


def test_token_over_the_cap_is_refused_before_it_is_parsed(relay, jwks):
    token = relay.token(padding='x' * (auth.MAX_TOKEN_BYTES + 1))
    jwks.reset_stats()
    assert refused(relay.post('/health', token=token)) == auth.WRONG_JWT_STRUCTURE
    assert jwks.requests == 0  # its header was never read, so no key was looked for


def test_huge_header_through_the_app_is_the_envelope_at_once(relay, jwks):
    """1 MB of Authorization header reaches the app itself as the documented envelope."""
    client = relay.app.test_client()
    token = 'e' + 'x' * (1024 * 1024)
    jwks.reset_stats()
    response = client.post('/health', headers={'Authorization': f'Bearer {token}'})
    assert refused(response) == auth.WRONG_JWT_STRUCTURE
    assert jwks.requests == 0


def test_huge_header_over_http_is_turned_away_at_once(relay):
    """Over HTTP the server refuses a 1 MB header line before the app sees it: final, not 5xx.

    werkzeug answers 431 (gunicorn 400): that rejection is the server's, not the relay's, so
    it cannot be the relay's envelope. What matters here is that it is final, and comes
    before the socket's 2 s timeout (a wait for more would raise there; no time is measured).
    """
    port = int(relay.url.rsplit(':', 1)[1])
    request = (
        b'POST /health HTTP/1.1\r\nHost: relay\r\nContent-Length: 0\r\n'
        b'Authorization: Bearer ' + b'x' * (1024 * 1024) + b'\r\n\r\n'
    )
    answer = send_raw(
        port, request, 2, enough=lambda got: got.endswith(b'</html>\n') or b'\r\n\r\n' in got
    )
    assert answer.startswith(
        (b'HTTP/1.1 431', b'HTTP/1.1 400', b'HTTP/1.0 431', b'HTTP/1.0 400')
    ), answer[:100]


# -- jwks_host values that try to leave the allow-list ---------------------------------------

ESCAPES = [
    '{allowed}@127.0.0.1:{cport}',
    'x@127.0.0.1:{cport}',
    'x:y@127.0.0.1:{cport}',
    '127.0.0.1:{cport}/{allowed}',
    '127.0.0.1:{cport}?{allowed}',
    '127.0.0.1:{cport}#{allowed}',
    '127.0.0.1:{cport}\\@{allowed}',
    '127.0.0.1:{cport}\\{allowed}',
    '{allowed}\\@127.0.0.1:{cport}',
    '127.0.0.1:{cport}',
    'localhost:{cport}',
    'LOCALHOST:{cport}',
    '127.1:{cport}',
    '2130706433:{cport}',
    '0x7f.0.0.1:{cport}',
    '0177.0.0.1:{cport}',
    '[::ffff:127.0.0.1]:{cport}',
    '127.0.0.1:{cport}\r\nHost: {allowed}',
    '127.0.0.1:{cport}%2f{allowed}',
    '\uff11\uff12\uff17.0.0.1:{cport}',
    '127\u30020\u30020\u30021:{cport}',
    'https://127.0.0.1:{cport}',
    '//127.0.0.1:{cport}',
]

NEAR_MISSES = [
    '{allowed}@evil.test',
    'evil.test/{allowed}',
    '{allowed}.evil.test',
    '{allowed}.',
    '{allowed}#x',
    '{allowed}?x',
    '{allowed}/',
    '{allowed}\\',
    '{allowed}\\x',
    '{ahost}:{cport}',
    '{ahost}',
    '{ahost}:443',
    '{ahost}:0{aport}',
    '{allowed}:{aport}',
    'user@{allowed}',
    'user:pass@{allowed}',
    ' {allowed}',
    '{allowed} ',
    '\t{allowed}',
    '{allowed}\n',
    '\u200b{allowed}',
    '{allowed}\x00',
    'https://{allowed}',
    '{cyrillic_localhost}:{aport}',
    '\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{aport}',
    'xn--localhost-:{aport}',
]


def _jwks_host(template, jwks, canary, allowed):
    ahost, aport = allowed.rsplit(':', 1)
    return template.format(
        allowed=allowed,
        ahost=ahost,
        aport=aport,
        cport=canary.port,
        cyrillic_localhost='l\u043ecalh\u043est',
    )


@pytest.fixture(scope='module')
def escape_relays(spycloud_server, jwks):
    """Two relays for the escape attempts: one allowing the issuer as ``127.0.0.1:<port>``,
    one as ``localhost:<port>`` (a name). Refusals cache nothing, so they are shared."""
    relays = [
        start_relay(relay_settings(spycloud_server, jwks, allowed_jwks_hosts=(host,)), jwks)
        for host in (jwks.jwks_host, f'localhost:{jwks.port}')
    ]
    yield relays
    for relay in relays:
        relay.stop()


@pytest.mark.parametrize('template', ESCAPES + NEAR_MISSES)
def test_jwks_host_escapes_reach_nobody(escape_relays, jwks, module_canary, template):
    before = module_canary.connections
    for relay in escape_relays:
        allowed = relay.settings.allowed_jwks_hosts[0]
        value = _jwks_host(template, jwks, module_canary, allowed)
        jwks.reset_stats()
        token = relay.token(jwks_host=value)
        assert refused(relay.post('/health', token=token)) == auth.WRONG_JWKS_HOST, value
        assert jwks.requests == 0, value  # refused before any fetch, even from allowed hosts
    assert module_canary.connections == before


@pytest.mark.parametrize(
    'value',
    [
        '127.0.0.1:{port}',
        '[::1]:{port}',
        '[::ffff:7f00:1]:{port}',
        'localhost.:{port}',
        'localhost:{port}.',
    ],
)
def test_the_same_server_by_another_name_is_refused(escape_relays, jwks, value):
    """Allowed as ``localhost:<port>``: its address, or a spelling of it, is not allowed."""
    relay = escape_relays[1]
    jwks.reset_stats()
    token = relay.token(jwks_host=value.format(port=jwks.port))
    assert refused(relay.post('/health', token=token)) == auth.WRONG_JWKS_HOST
    assert jwks.requests == 0
    assert relay.post('/health', jwks_host=f'localhost:{jwks.port}').json() == {
        'data': {'status': 'ok'}
    }


@pytest.mark.parametrize(
    'value', [['{allowed}'], [['{allowed}']], 443, 1.5, True, {'host': '{allowed}'}]
)
def test_jwks_host_of_another_type_is_refused(relay, jwks, module_canary, value):
    text = json.dumps(value).replace('{allowed}', jwks.jwks_host)
    before = module_canary.connections
    jwks.reset_stats()
    assert refused(relay.post('/health', jwks_host=json.loads(text))) == auth.WRONG_JWKS_HOST
    assert jwks.requests == 0
    assert module_canary.connections == before


@pytest.mark.parametrize('value', [None, '', [], 0, False, {}])  # None: no claim at all
def test_empty_jwks_host_is_missing(relay, jwks, value):
    jwks.reset_stats()
    assert refused(relay.post('/health', jwks_host=value)) == auth.JWKS_HOST_MISSING
    assert jwks.requests == 0


def test_allowed_names_match_case_insensitively(make_relay, jwks):
    """The near misses above are refused for what they are, not for being names."""
    relay = make_relay(allowed_jwks_hosts=(f'localhost:{jwks.port}',))
    assert relay.post('/health', jwks_host=f'LocalHost:{jwks.port}').json() == {
        'data': {'status': 'ok'}
    }


def test_the_canary_would_have_answered(make_relay, canaries):
    """Control: a relay allowed to use a canary verifies a token that names it, so the
    connection counts of 0 above mean something."""
    canary = canaries('jwks')
    relay = make_relay(allowed_jwks_hosts=(canary.host,))
    assert relay.post('/health', jwks_host=canary.host).json() == {'data': {'status': 'ok'}}
    assert canary.connections == 1


# -- key servers that misbehave ---------------------------------------------------------------


def canary_relay(make_relay, canary, jwks_timeout_s=JWKS_TIMEOUT, **overrides):
    relay = make_relay(
        allowed_jwks_hosts=(canary.host,), jwks_timeout_s=jwks_timeout_s, **overrides
    )
    return relay, relay.token(jwks_host=canary.host)


def timed_refusal(relay, token):
    started = time.monotonic()
    reason = refused(relay.post('/health', token=token))
    return reason, time.monotonic() - started


@pytest.mark.parametrize('mode', ['silent', 'drip-headers', 'drip-body'])
def test_slow_key_servers_are_cut_off_on_time(make_relay, canaries, mode):
    """A byte every 0.2 s never trips a read timeout; the fetch's own deadline must end it."""
    canary = canaries(mode, interval=0.2)
    relay, token = canary_relay(make_relay, canary)
    reason, elapsed = timed_refusal(relay, token)
    assert reason == auth.WRONG_JWKS_HOST
    assert elapsed < JWKS_TIMEOUT + MARGIN
    assert canary.connections == 1


@pytest.mark.parametrize(
    'mode,size',
    [('huge', 32 * 1024 * 1024), ('gzip-bomb', 64 * 1024 * 1024), ('jwks', MAX_JWKS_BYTES + 1)],
)
def test_key_sets_over_the_cap_are_refused_unread(make_relay, canaries, mode, size):
    """Each body is a *valid* JWKS with the real keys, padded: only the cap can refuse it.

    The fetch's own time limit is set far away (30 s), so a refusal within it is the cap's,
    whatever the machine's speed; what was sent and read is what is asserted.
    """
    canary = canaries(mode, size=size)
    relay = make_relay(allowed_jwks_hosts=(canary.host,), jwks_timeout_s=30.0)
    reason, elapsed = timed_refusal(relay, relay.token(jwks_host=canary.host))
    assert reason == auth.WRONG_JWKS_HOST
    assert elapsed < 15.0  # the cap, not the 30 s fetch limit, ended it
    assert canary.connections == 1
    if mode == 'huge':
        assert canary.bytes_sent < size // 2  # the relay hung up long before the end


@pytest.mark.parametrize(
    'document',
    [
        b'[' * 200000,
        b'{"keys": ' + b'[' * 200000 + b']' * 200000 + b'}',
        b'{"keys": "not a list"}',
        b'{"keys": [{"kty": "RSA", "kid": "x", "n": "!!", "e": "AQAB"}, 7, null, "k"]}',
        b'["keys"]',
        b'\xff\xfe\x00',
        b'',
    ],
)
def test_key_sets_that_are_not_usable_are_refused(make_relay, canaries, document):
    canary = canaries('jwks', document=document)
    relay, token = canary_relay(make_relay, canary)
    assert timed_refusal(relay, token)[0] == auth.WRONG_JWKS_HOST
    assert canary.connections == 1


def test_key_set_just_under_the_cap_is_accepted(make_relay, canaries):
    canary = canaries('jwks', size=MAX_JWKS_BYTES - 1024)
    relay, token = canary_relay(make_relay, canary)
    assert relay.post('/health', token=token).json() == {'data': {'status': 'ok'}}


def test_redirects_are_not_followed(make_relay, canaries):
    target = canaries('jwks')
    canary = canaries('redirect', location=f'https://{target.host}/.well-known/jwks')
    relay, token = canary_relay(make_relay, canary)
    assert timed_refusal(relay, token)[0] == auth.WRONG_JWKS_HOST
    assert canary.connections == 1
    assert target.connections == 0


@pytest.mark.parametrize('mode', ['status', 'garbage', 'huge', 'redirect', 'hang'])
def test_simulator_issuer_modes(make_relay, jwks, mode):
    relay = make_relay(jwks_timeout_s=JWKS_TIMEOUT)
    jwks.mode = mode
    try:
        reason, elapsed = timed_refusal(relay, relay.token())
    finally:
        jwks.mode = 'ok'
    assert reason == auth.WRONG_JWKS_HOST
    assert elapsed < JWKS_TIMEOUT + MARGIN
    assert relay.health() == {'data': {'status': 'ok'}}  # and it recovers with the host


def test_requests_queued_behind_a_dead_key_server_fail_with_it(make_relay, canaries):
    """Four requests at once against a silent host: each ends within one timeout, not four."""
    canary = canaries('silent')
    relay, token = canary_relay(make_relay, canary)
    results = []

    def call():
        results.append(timed_refusal(relay, token))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [reason for reason, _ in results] == [auth.WRONG_JWKS_HOST] * 4
    assert max(elapsed for _, elapsed in results) < JWKS_TIMEOUT + MARGIN
    assert canary.connections == 1  # one fetch, shared by the queue


def test_known_keys_do_not_wait_for_a_refresh_of_an_unknown_kid(make_relay, canaries, jwks):
    """A forged kid starts a refresh from a host that went silent: tokens whose key is cached
    are answered meanwhile, and not failed with that refresh."""
    canary = canaries('jwks')
    relay, token = canary_relay(
        make_relay, canary, jwks_timeout_s=30, jwks_refresh_min_interval_s=0
    )
    assert relay.post('/health', token=token).json() == {'data': {'status': 'ok'}}
    canary.mode = 'silent'
    forged = jwks.mint(relay.url, kid='forged', jwks_host=canary.host)
    results, connections = [], canary.connections
    refresh = threading.Thread(target=lambda: results.append(timed_refusal(relay, forged)))
    refresh.start()
    # until the refresh is under way, holding the host's lock
    wait_until(lambda: canary.connections != connections)
    assert canary.connections == connections + 1
    assert relay.post('/health', token=relay.token(jwks_host=canary.host)).json() == {
        'data': {'status': 'ok'}
    }
    # Answered while the refresh still waits on the silent host (for up to 30 s): it did not
    # queue behind it. Then the host hangs up, and the refresh fails.
    assert not results and refresh.is_alive()
    canary.stop()
    refresh.join(10)
    assert results and results[0][0] == auth.WRONG_JWKS_HOST
    assert relay.post('/health', token=token).json() == {'data': {'status': 'ok'}}


def test_a_failed_fetch_is_not_remembered(make_relay, canaries):
    canary = canaries('silent')
    relay, token = canary_relay(make_relay, canary)
    assert timed_refusal(relay, token)[0] == auth.WRONG_JWKS_HOST
    canary.mode = 'jwks'
    assert relay.post('/health', token=token).json() == {'data': {'status': 'ok'}}


def test_unreachable_key_server_is_refused_quickly(make_relay):
    closed = socket.create_server(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()
    relay = make_relay(allowed_jwks_hosts=(f'127.0.0.1:{port}',), jwks_timeout_s=JWKS_TIMEOUT)
    reason, elapsed = timed_refusal(relay, relay.token(jwks_host=f'127.0.0.1:{port}'))
    assert reason == auth.WRONG_JWKS_HOST
    assert elapsed < JWKS_TIMEOUT + MARGIN


def test_untrusted_certificate_is_refused(make_relay, canaries):
    """A key server whose certificate the relay does not trust gets no say."""
    canary = canaries('jwks')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('REQUESTS_CA_BUNDLE', requests.certs.where())
        relay, token = canary_relay(make_relay, canary)
        assert timed_refusal(relay, token)[0] == auth.WRONG_JWKS_HOST
    assert canary.connections == 1
    assert canary.bytes_received == 0  # the TLS handshake failed before any request
