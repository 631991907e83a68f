"""The `relay` command line: lookups, key checks, tokens and the standalone simulator."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from simulator import DEFAULT_API_KEY, JwksIssuer, data
from spycloud_relay import cli
from support import BUNDLE, windowed_calls


def run(*args, env=None):
    return CliRunner().invoke(cli.cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    'value, kind',
    [
        ('a@b.example', 'email'),
        ('192.0.2.1', 'ip'),
        ('2001:db8::1', 'ipv6'),
        ('acme.example', 'domain'),
        ('jdoe', 'user'),
    ],
)
def test_guess_type(value, kind):
    assert cli.guess_type(value) == kind


def test_lookup_prints_a_masked_table_newest_first():
    value = 'r5c2@cli.example'
    result = run('lookup', '--simulator', value)
    assert result.exit_code == 0, result.output
    assert f'email {value}: 5 of 5 SpyCloud records' in result.output
    records = data.records_for('emails', value)
    for record in records:
        assert record['spycloud_publish_date'][:10] in result.output
        if record.get('password_plaintext'):
            assert record['password_plaintext'] not in result.output
    dates = [r['spycloud_publish_date'][:10] for r in records]
    positions = [result.output.index(d) for d in dates]
    assert positions == sorted(positions)


def test_lookup_can_show_passwords():
    value = 'r4c2@cli.example'
    result = run('lookup', '--simulator', '--show-passwords', value)
    plain = [
        r['password']
        for r in data.records_for('emails', value)
        if r.get('password_type') == 'plaintext'
    ]
    assert plain and all(p in result.output for p in plain)


def test_lookup_json_is_the_ctim_bundle():
    result = run(
        'lookup', '--simulator', '--json', '--limit', '3', 'r6c3@cli.example', 'r2c1.cli.example'
    )
    assert result.exit_code == 0
    body = json.loads(result.output)
    BUNDLE.validate(body['data'])
    assert body['data']['sightings']['count'] == 3 + 2
    assert any(e['code'] == 'too many records' for e in body['errors'])


def test_lookup_prints_the_verdict_line():
    result = run('lookup', '--simulator', 'v5s25@cli.example', 'v200s25@cli.example')
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith('verdict:')]
    assert lines[0].startswith('verdict: Suspicious until ')
    assert '1 exposure in 90 days' in lines[0] and 'worst: infostealer (25)' in lines[0]
    assert lines[1].startswith(
        'verdict: none (no record at severity 20 or above in the last 90 days'
    )
    off = run('lookup', '--simulator', '--verdict-days', '0', 'v5s25@cli.example')
    assert 'verdict:' not in off.output


def test_lookup_json_carries_the_judgement():
    result = run('lookup', '--simulator', '--json', 'v5s25@cli.example')
    body = json.loads(result.output)
    BUNDLE.validate(body['data'])
    assert body['data']['judgements']['count'] == body['data']['verdicts']['count'] == 1


def test_watchlist_show_add_verify_remove(spycloud):
    def watch(*args):
        result = run(
            'watchlist', '--api-url', spycloud.url, *args, env={'SPYCLOUD_API_KEY': DEFAULT_API_KEY}
        )
        assert result.exit_code == 0, result.output
        return result.output.strip()

    assert watch('show', 'acquired.example') == 'acquired.example (domain): not on the watchlist'
    assert watch('add', 'acquired.example') == 'acquired.example (domain): added'
    assert watch('add', 'acquired.example') == 'acquired.example (domain): already there'
    assert watch('show', 'acquired.example') == 'acquired.example (domain): active, not verified'
    assert watch('verify', 'acquired.example') == 'acquired.example (domain): verified'
    assert watch('remove', 'acquired.example') == 'acquired.example (domain): removed'
    assert watch('remove', 'acquired.example') == 'acquired.example (domain): already gone'
    assert 'acquired.example' not in spycloud.watchlist()


def test_watchlist_refuses_what_it_cannot_take(spycloud):
    result = run(
        'watchlist',
        '--api-url',
        spycloud.url,
        'add',
        'jdoe',
        env={'SPYCLOUD_API_KEY': DEFAULT_API_KEY},
    )
    assert result.exit_code == 2 and 'is not an e-mail address' in result.output
    failed = run(
        'watchlist',
        '--api-url',
        spycloud.url,
        'show',
        'a@b.example',
        env={'SPYCLOUD_API_KEY': 'wrong'},
    )
    assert failed.exit_code == 1 and 'Invalid API key' in failed.output
    assert spycloud.stats()['requests'] == 1


def test_tiles_print_the_dashboard(spycloud):
    result = run(
        'tiles',
        '--api-url',
        spycloud.url,
        '--period',
        'last_24_hours',
        env={'SPYCLOUD_API_KEY': DEFAULT_API_KEY, 'SPYCLOUD_RATE_LIMIT': '0'},
    )
    assert result.exit_code == 0, result.output
    for title in (
        'Exposure summary',
        'Exposures per day',
        'Exposures by severity',
        'Most exposed accounts',
        'Newest breach sources',
        'Infected devices summary',
        'Infected devices (last_24_hours)',
    ):
        assert title in result.output
    assert 'Exposed accounts: ' in result.output and 'Corporate credentials' in result.output
    assert 'Infected devices: ' in result.output and 'infected device(s)' in result.output
    endpoints = [c['endpoint'] for c in spycloud.request_log]
    assert endpoints[0] == 'watchlist-records'  # the day's window, then the catalogs
    assert endpoints.count('watchlist-records') == windowed_calls('last_24_hours')
    assert endpoints[-1] == 'compass-devices' and endpoints.count('compass-devices') == 1
    refused = run('tiles', '--api-url', spycloud.url, env={'SPYCLOUD_API_KEY': 'wrong'})
    assert refused.exit_code == 1 and 'authorization error' in refused.output


def test_lookup_against_an_api_url_with_a_key_from_the_environment(spycloud):
    result = run(
        'lookup',
        '--api-url',
        spycloud.url,
        '--api-key-env',
        'MY_KEY',
        '--type',
        'user',
        'r2c1',
        env={'MY_KEY': DEFAULT_API_KEY},
    )
    assert result.exit_code == 0, result.output
    assert spycloud.request_log[0]['endpoint'] == 'usernames'
    assert spycloud.request_log[0]['api_key'] == DEFAULT_API_KEY


def test_lookup_with_filters(spycloud):
    result = run(
        'lookup',
        '--api-url',
        spycloud.url,
        '--min-severity',
        '20',
        '--lookback-days',
        '90',
        'r3c1@f.example',
        env={'SPYCLOUD_API_KEY': 'x'},
    )
    assert result.exit_code == 1
    assert 'authorization error' in result.output and 'Invalid API key' in result.output
    assert spycloud.request_log[0]['query']['severity'] == ['20,25,26,30']
    assert 'since' in spycloud.request_log[0]['query']


def test_lookup_without_a_key_says_how_to_give_one():
    result = run('lookup', 'a@b.example', env={'SPYCLOUD_API_KEY': ''})
    assert result.exit_code == cli.EXIT_CONFIG
    assert 'SPYCLOUD_API_KEY' in result.output and '--simulator' in result.output


def test_bad_configuration_exits_3():
    result = run('check', '--simulator', env={'LOOKUP_DEADLINE_S': 'soon'})
    assert result.exit_code == cli.EXIT_CONFIG
    assert 'LOOKUP_DEADLINE_S must be a number' in result.output


def test_bad_usage_exits_2():
    assert run('lookup', '--limit', '0', 'a@b.example').exit_code == 2
    assert run('lookup').exit_code == 2


def test_check(spycloud):
    assert run('check', '--simulator').output.startswith('ok: SpyCloud at http://127.0.0.1:')
    bad = run('check', '--api-url', spycloud.url, env={'SPYCLOUD_API_KEY': 'wrong'})
    assert bad.exit_code == cli.EXIT_LOOKUP
    assert 'Forbidden (Invalid API key)' in bad.output


def test_token_is_signed_by_the_local_issuer(tmp_path):
    with JwksIssuer(state_dir=str(tmp_path)) as issuer:
        result = run(
            'token',
            '--state-dir',
            str(tmp_path),
            '--aud',
            'http://127.0.0.1:9',
            '--limit',
            '7',
            '--min-severity',
            '20',
        )
        assert result.exit_code == 0, result.output
        token = result.output.strip()
        key = jwt.PyJWK(issuer.jwks()['keys'][0]).key
        claims = jwt.decode(token, key, algorithms=['RS256'], audience='http://127.0.0.1:9')
        assert claims['jwks_host'] == issuer.jwks_host
    assert claims['key'] == DEFAULT_API_KEY
    assert claims['CTR_ENTITIES_LIMIT'] == 7 and claims['min_severity'] == '20'


def test_token_without_a_running_simulator(tmp_path):
    result = run('token', '--state-dir', str(tmp_path / 'none'))
    assert result.exit_code == cli.EXIT_CONFIG
    assert 'start `relay simulator` first' in result.output


RELAY = Path(sys.executable).with_name('relay')  # the package's [project.scripts] entry


def test_the_installed_relay_command_and_its_simulator(tmp_path):
    """`relay` is the console script the package installs, run from anywhere (here /)."""
    shown = subprocess.run([RELAY, '--version'], cwd='/', timeout=30, capture_output=True)
    assert (shown.returncode, shown.stdout.split()[-1]) == (0, cli.VERSION.encode())
    command = [RELAY, 'simulator', '--spycloud-port', '0']
    command += ['--jwks-port', '0', '--state-dir', str(tmp_path)]
    # `with` closes the pipe: an unclosed one is a ResourceWarning, which fails the test.
    with subprocess.Popen(command, cwd='/', stdout=subprocess.PIPE, text=True) as process:
        try:
            first = process.stdout.readline()
            assert first.startswith('SpyCloud simulator  http://127.0.0.1:')
            assert (tmp_path / 'state.json').exists()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


# What the image's `relay` does: the package without a checkout's code/ beside it.
WITHOUT_CHECKOUT = """
import sys
sys.modules.update(simulator=None, devcommands=None)  # an import of either fails, as in the image
from spycloud_relay.cli import main
sys.argv = ['relay', *sys.argv[1:]]
main()
"""


def test_without_a_checkout_the_developer_commands_are_absent():
    done = subprocess.run(
        [sys.executable, '-c', WITHOUT_CHECKOUT, '--help'], capture_output=True, text=True
    )
    assert done.returncode == 0 and 'lookup' in done.stdout
    assert 'simulator' not in done.stdout.split('Commands:')[1]


def test_without_a_checkout_simulator_is_one_clear_line():
    done = subprocess.run(
        [sys.executable, '-c', WITHOUT_CHECKOUT, 'lookup', '--simulator', 'a@b.example'],
        capture_output=True,
        text=True,
    )
    assert done.returncode == cli.EXIT_CONFIG
    assert done.stderr.strip().splitlines() == [
        'error: the simulator is a developer tool: run relay from a checkout to use it'
    ]


WIDE = {'COLUMNS': '300'}  # a row per line, so that a cell is found whole


def plaintexts(value):
    return [
        r['password']
        for r in data.records_for('emails', value)
        if r.get('password_type') == 'plaintext' and r.get('password')
    ]


def test_lookup_checks_the_password_policy_it_is_given():
    value = 'r5c2@cli.example'
    passwords = plaintexts(value)
    assert passwords, 'the simulator gives this account plaintext passwords'
    longer = max(len(p) for p in passwords) + 1
    result = run('lookup', '--simulator', '--password-min-length', str(longer), value, env=WIDE)
    assert result.exit_code == 0, result.output
    for password in passwords:
        assert f'too short ({len(password)} < {longer})' in result.output
        assert password not in result.output
    assert 'Reset the password' in result.output and 'plaintext' in result.output
    off = run('lookup', '--simulator', '--password-min-length', '0', value, env=WIDE)
    assert off.output.count('not checked (no policy)') == len(passwords)


def test_lookup_requires_a_symbol_when_asked():
    value = 'r5c2@cli.example'
    passwords = plaintexts(value)
    plain = [p for p in passwords if all(ch.isalnum() or ch.isspace() for ch in p)]
    result = run(
        'lookup',
        '--simulator',
        '--password-min-length',
        '0',
        '--password-require-symbol',
        value,
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert result.output.count('no symbol') == len(plain)
    assert result.output.count('meets policy') == len(passwords) - len(plain)


def test_lookup_json_carries_the_password_policy():
    value = 'r5c2@cli.example'
    longer = max(len(p) for p in plaintexts(value)) + 1
    result = run('lookup', '--simulator', '--json', '--password-min-length', str(longer), value)
    body = json.loads(result.output)
    tables = [s['data'] for s in body['data']['sightings']['docs']]
    policies = [
        row[[c['name'] for c in t['columns']].index('password_policy')]
        for t in tables
        for row in t['rows']
    ]
    assert sum(
        p.startswith('too short (') and p.endswith(f' < {longer})') for p in policies
    ) == len(plaintexts(value))


@pytest.mark.parametrize('length', ['x', '-1', '257', '1.5', '', '9' * 5000])
def test_a_bad_password_length_is_one_clear_line(length):
    result = run('lookup', '--simulator', '--password-min-length', length, 'a@b.example')
    assert result.exit_code == 2
    assert result.output.count('\n') == 1
    assert 'error: --password-min-length must be a whole number of characters from 0 to 256' in (
        result.output
    )
