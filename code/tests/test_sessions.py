"""Stolen sessions, password facts without the password, and what to do next, over HTTP.

Each test writes the records SpyCloud serves for its own address (the simulator's
``lookup_records``), or takes the generated ones (``v{D}s{S}`` addresses, simulator/data.py:
severity 26 and 30 records carry a stolen cookie) and derives what to expect from them. Every
answer is checked against IROH's observe contract (support.assert_valid_answer).
"""

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import data
from support import docs, email

TODAY = datetime.now(UTC).date()
SOURCE_ID = 20003  # any id: the simulator makes up its catalog
FAST = settings.get_current_profile_name() == 'fast'


def day(ago):
    return (TODAY - timedelta(days=ago)).isoformat()


def serve(spycloud, value, *records):
    """SpyCloud's records of ``value``: each of ``records`` over a recent record of it."""
    spycloud.lookup_records[('emails', value.lower())] = [
        {
            'document_id': str(uuid.uuid5(uuid.NAMESPACE_URL, f'{value}/{index}')),
            'source_id': SOURCE_ID,
            'spycloud_publish_date': f'{day(3 + index)}T00:00:00Z',
            'email': value,
            'severity': 20,
            **fields,
        }
        for index, fields in enumerate(records)
    ]


def row(sighting):
    table = sighting['data']
    return dict(zip([c['name'] for c in table['columns']], table['rows'][0], strict=True))


def only_sighting(body):
    (sighting,) = docs(body, 'sightings')
    return sighting


COOKIE = {
    'cookie_domain': '.mail.example.com',
    'cookie_name': 'SIDCC-name-of-the-test',
    'cookie_value': 'C00kie-value-of-the-test',
    'cookie_expiration': '2027-03-01T12:00:00Z',
    'session_id': 'Session-id-of-the-test',
    'access_token': 'Access-token-of-the-test',
}
SESSION_SECRETS = [
    COOKIE[name] for name in ('cookie_name', 'cookie_value', 'session_id', 'access_token')
]

# -- 26 and 30: named, Critical, and no cookie in sight ---------------------------------------


@pytest.mark.parametrize('severity, words', [(26, 'Session stolen'), (30, 'Cookies stolen')])
def test_stolen_sessions_are_critical_and_named(relay, spycloud, severity, words):
    value = f'sessions{severity}@stolen.example'
    serve(spycloud, value, {'severity': severity, 'password': 'Pa55-word-of-the-test', **COOKIE})
    body = relay.observe([email(value)])
    sighting = only_sighting(body)
    assert sighting['severity'] == 'Critical'
    assert sighting['description'].startswith(
        f'{words} (cookie domain .mail.example.com, expires 2027-03-01T12:00:00Z): present in '
    )
    cells = row(sighting)
    assert cells['cookie_domain'] == '.mail.example.com'
    assert cells['cookie_expiration'] == '2027-03-01T12:00:00Z'
    for name in ('cookie_name', 'cookie_value', 'session_id', 'access_token'):
        assert cells[name] == '(withheld)'
    assert cells['remediation'] == (
        'Reset the password; revoke the active sessions; check the password for reuse on other '
        'accounts.'
    )
    (judgement,) = docs(body, 'judgements')
    assert judgement['severity'] == 'Critical'
    assert judgement['reason'].endswith(f'({severity}). {cells["remediation"]}')
    text = json.dumps(body)
    for secret in [*SESSION_SECRETS, 'Pa55-word-of-the-test']:
        assert secret not in text


@pytest.mark.parametrize('severity', [26, 30])
def test_the_simulators_stolen_cookies_never_show(relay, severity):
    """The generated 26/30 records, whatever the module says about passwords."""
    value = f'v2s{severity}@generated.example'
    (record,) = data.records_for('emails', value)
    assert {'cookie_name', 'cookie_value', 'cookie_domain'} <= set(record)
    for show_passwords in (False, True):
        body = relay.observe([email(value)], show_passwords=show_passwords)
        sighting = only_sighting(body)
        assert f'cookie domain {record["cookie_domain"]}' in sighting['description']
        text = json.dumps(body)
        assert record['cookie_value'] not in text
        assert f'"{record["cookie_name"]}"' not in text  # as a value of its own
        assert row(sighting)['cookie_name'] == '(withheld)'
        assert (record['password'] in text) is show_passwords  # the control


def test_a_cookie_name_is_not_shown_in_the_data_table(relay, spycloud):
    """The known leak: ``cookie_name`` (and tokens in a URL, secrets nested in an object) went
    into the sighting's data table in clear."""
    value = 'leak@cookie.example'
    serve(
        spycloud,
        value,
        {
            'severity': 25,
            'cookie_name': 'X-Leaked-Cookie-Name',
            'target_url': 'https://bob:Url-Pa55@login.example.net/x?token=Url-T0ken-1',
            'log_data': {'password': 'Nested-Pa55-1', 'sessionid': 'Nested-Session-1'},
        },
    )
    body = relay.observe([email(value)])
    cells = row(only_sighting(body))
    assert cells['cookie_name'] == '(withheld)'
    assert cells['target_url'] == 'https://login.example.net'
    assert json.loads(cells['log_data'])['sessionid'] == '(withheld)'
    text = json.dumps(body)
    for secret in ('X-Leaked-Cookie-Name', 'Url-Pa55', 'Url-T0ken-1', 'Nested-', 'Session-1'):
        assert secret not in text


def test_an_unreadable_cookie_domain_or_expiry_stays_out_of_the_description(relay, spycloud):
    value = 'odd@cookie.example'
    serve(
        spycloud,
        value,
        {'severity': 30, 'cookie_domain': '[x](javascript:1)', 'cookie_expiration': 'soon'},
    )
    sighting = only_sighting(relay.observe([email(value)]))
    assert sighting['description'].startswith('Cookies stolen: present in ')
    assert row(sighting)['cookie_expiration'] == 'soon'


# -- password facts without the password ------------------------------------------------------

POLICY_CASES = [
    # (record fields, module claims, password_type, password_policy)
    ({'password': 'Tiger7', 'password_type': 'plaintext'}, {}, 'plaintext', 'too short (6 < 12)'),
    (
        {'password': 'correcthorsebattery', 'password_type': 'plaintext'},
        {},
        'plaintext',
        'meets policy',
    ),
    (
        {'password': 'correcthorsebattery', 'password_type': 'plaintext'},
        {'password_policy_require_symbol': True},
        'plaintext',
        'no symbol',
    ),
    (
        {'password': 'correct-horse-battery', 'password_type': 'plaintext'},
        {'password_policy_require_symbol': 'true'},
        'plaintext',
        'meets policy',
    ),
    (
        {'password': 'Pw8xq', 'password_type': 'plaintext'},
        {'password_policy_require_symbol': True, 'password_policy_min_length': 8},
        'plaintext',
        'too short (5 < 8), no symbol',
    ),
    (
        {'password': 'Tiger7', 'password_type': 'plaintext'},
        {'password_policy_min_length': 0},
        'plaintext',
        'not checked (no policy)',
    ),
    (
        {'password': '$2a$10$' + 'b' * 53, 'password_type': 'bcrypt', 'severity': 5},
        {},
        'hashed (bcrypt)',
        'unknown (hashed)',
    ),
    (
        {'password': 'a' * 40, 'password_type': 'sha1', 'password_plaintext': 'Cracked-1'},
        {},
        'hashed (sha1), cracked',
        'too short (9 < 12)',
    ),
    ({'password': '********', 'password_type': 'plaintext'}, {}, 'masked', 'unknown (masked)'),
    ({'severity': 2}, {}, 'none', 'no password'),
]


@pytest.mark.parametrize('fields, claims, kind, verdict', POLICY_CASES)
def test_password_facts(relay, spycloud, fields, claims, kind, verdict):
    value = 'policy@facts.example'  # each test has a relay and SpyCloud records of its own
    serve(spycloud, value, fields)
    body = relay.observe([email(value)], **claims)
    assert 'errors' not in body, body
    cells = row(only_sighting(body))
    assert (cells['password_type'], cells['password_policy']) == (kind, verdict)
    text = json.dumps(body)
    for name in ('password', 'password_plaintext'):
        secret = fields.get(name)
        if secret and set(secret) != {'*'}:
            assert secret not in text


@pytest.mark.parametrize(
    'claims, warned',
    [
        ({'password_policy_min_length': 'long'}, 'custom_password_policy_min_length'),
        ({'password_policy_min_length': -1}, 'custom_password_policy_min_length'),
        ({'password_policy_min_length': 100000}, 'custom_password_policy_min_length'),
        ({'password_policy_require_symbol': 'perhaps'}, 'custom_password_policy_require_symbol'),
    ],
)
def test_a_bad_policy_field_falls_back_with_a_warning(relay, spycloud, claims, warned):
    value = 'bad.policy@facts.example'
    serve(spycloud, value, {'password': 'Tiger7', 'password_type': 'plaintext'})
    body = relay.observe([email(value)], **claims)
    (warning,) = body['errors']
    assert (warning['type'], warning['code']) == ('warning', 'invalid argument')
    assert warned in warning['message'] and 'Tiger7' not in warning['message']
    assert row(only_sighting(body))['password_policy'] == 'too short (6 < 12)'  # the defaults


# -- what to do -------------------------------------------------------------------------------

RESET = 'Reset the password'
REUSE = 'check the password for reuse on other accounts.'


@pytest.mark.parametrize(
    'fields, line',
    [
        ({'severity': 2}, 'No credential exposed: watch the account for phishing.'),
        (
            {'severity': 5, 'full_name': 'A B'},
            'No credential exposed: watch the account for phishing.',
        ),
        ({'severity': 20, 'password': 'x' * 12}, f'{RESET}; {REUSE}'),
        (
            {'severity': 25, 'password': 'x' * 12, 'infected_machine_id': 'M-1'},
            f'{RESET}; isolate and re-image the device; {REUSE}',
        ),
        (
            {'severity': 20, 'password': 'x' * 12, 'infected_machine_id': 'M-1'},
            f'{RESET}; isolate and re-image the device; {REUSE}',
        ),
        (
            {'severity': 26, 'infected_machine_id': 'M-1', **COOKIE},
            f'{RESET}; revoke the active sessions; isolate and re-image the device; {REUSE}',
        ),
    ],
)
def test_each_sighting_says_what_to_do(relay, spycloud, fields, line):
    value = f'todo.{fields["severity"]}.{len(fields)}@remedy.example'
    serve(spycloud, value, fields)
    body = relay.observe([email(value)])
    assert row(only_sighting(body))['remediation'] == line
    judgements = docs(body, 'judgements')
    if fields['severity'] >= 20:
        (judgement,) = judgements
        assert judgement['reason'].endswith(line)
        assert len(judgement['reason']) <= 1024
    else:
        assert judgements == []


def test_the_judgement_says_what_its_evidence_calls_for(relay, spycloud):
    """The worst record (a stolen session) and the newest (a device) both count."""
    value = 'evidence@remedy.example'
    serve(
        spycloud,
        value,
        {'severity': 20, 'password': 'x' * 12, 'infected_machine_id': 'M-2'},
        {'severity': 30, **COOKIE},
    )
    (judgement,) = docs(relay.observe([email(value)]), 'judgements')
    assert judgement['reason'].endswith(
        f'worst: stolen session cookies (30). {RESET}; revoke the active sessions; isolate and '
        f're-image the device; {REUSE}'
    )


# -- the property: no secret in any answer, for any record ------------------------------------

SECRET_ALPHABET = 'αβγδεζηθικλμνξοπρστυφχψω'
WORD = st.text(SECRET_ALPHABET, min_size=8, max_size=24)
PLAIN = st.text(
    st.characters(exclude_characters=SECRET_ALPHABET + SECRET_ALPHABET.upper()), max_size=20
)
SECRET_NAMES = (
    'password',
    'password_plaintext',
    'salt',
    'cookie_name',
    'cookie_value',
    'session_id',
    'auth_token',
)
SERIAL = itertools.count()


@st.composite
def secret_records(draw):
    """A record with secrets in every field that may hold one, and the secrets."""
    fields = draw(st.fixed_dictionaries({}, optional={name: WORD for name in SECRET_NAMES}))
    nested = draw(st.dictionaries(st.sampled_from(SECRET_NAMES), WORD, max_size=2))
    fields.update(
        severity=draw(st.sampled_from([2, 5, 20, 25, 26, 30])),
        password_type=draw(st.one_of(st.sampled_from(['plaintext', 'bcrypt', 'sha1']), PLAIN)),
        cookie_domain=draw(st.one_of(st.just('.mail.example.com'), PLAIN)),
        cookie_expiration=draw(st.one_of(st.just('2027-01-01T00:00:00Z'), PLAIN)),
        infected_machine_id=draw(st.one_of(st.none(), PLAIN)),
    )
    if nested:
        fields['log_data'] = nested
    query = draw(WORD)
    fields['target_url'] = f'https://user:{query}@login.example.net/x?token={query}'
    return fields, [*(fields.get(n) for n in SECRET_NAMES if n in fields), *nested.values(), query]


@settings(
    max_examples=10 if FAST else 60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(secret_records(), st.booleans())
def test_no_secret_in_any_observe_answer(relay, spycloud, drawn, require_symbol):
    fields, secrets = drawn
    value = f'property.{next(SERIAL)}@secrets.example'
    serve(spycloud, value, fields)
    body = relay.observe(
        [email(value)], password_policy_require_symbol=require_symbol, password_policy_min_length=10
    )
    text = json.dumps(body, ensure_ascii=False)
    assert 'sightings' in body['data']
    for secret in secrets:
        assert secret not in text
