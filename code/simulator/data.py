"""Deterministic SpyCloud-shaped data (breach records, catalogs, watchlist items).

Everything here is a pure function of its arguments: the same observable always yields the same
records, so relay tests can assert on exact values and two processes agree without sharing
state. Shapes and proportions follow the SpyCloud API spec (kept outside this repository),
§2.5, §2.6 and §6.

Severity 26 and 30 records (session and cookie theft) carry a stolen cookie: its domain, name,
value and expiry.

Test hooks: an e-mail local part, the first label of a domain, or a username of the form
``r{N}c{M}`` (optionally followed by ``-anything``) yields exactly N records over min(N, M)
catalogs; ``none`` or ``r0c0`` yields none. A label of ``v{D}s{S}`` tokens joined by ``_``
(``v3s25_v120s20``) yields one record per token, published D days before today (UTC) with
severity S: the one hook that follows the calendar, for verdicts and their windows.

Infostealer (severity 25) records name their infected machine: an observable's records share
machines three at a time, and the machine's hostname, OS and MAC are its Compass profile
(simulator/compass.py). An ``r{N}c{M}-dev{R}`` label puts all of them on one machine that
holds R records in Compass.
"""

import datetime
import hashlib
import ipaddress
import math
import random
import re
import string
import uuid

from . import compass

__all__ = [
    'DEFAULT_API_KEY',
    'KINDS',
    'MAX_RECORDS',
    'SEVERITY_PATTERN',
    'records_for',
    'catalog_ids_for',
    'catalog',
    'watchlist_item',
    'parse_rc_label',
]

DEFAULT_API_KEY = 'spycloud-sim-key'
KINDS = ('emails', 'domains', 'ips', 'usernames')
# r{N}c{M} asks for N records; a cap keeps a typo from eating the test machine's memory.
MAX_RECORDS = 100_000
RANDOM_CAP = 50

# 50-long cycle: 35x20, 8x25, 4x5, 3x2 = 70/16/8/6 %, and it starts 20, 25, 5, 2 so that even
# a four-record observable exercises every severity.
# fmt: off
SEVERITY_PATTERN = (
    20, 25, 5, 2, 20, 20, 20, 25, 20, 20,
    20, 20, 25, 20, 20, 5, 20, 20, 25, 20,
    20, 20, 2, 20, 20, 25, 20, 20, 20, 5,
    20, 20, 25, 20, 20, 20, 20, 2, 20, 25,
    20, 20, 5, 20, 20, 20, 25, 20, 20, 20,
)
# fmt: on

_NS = uuid.UUID('5b0c6f38-3f7e-4f51-9a53-5c10d0c0a1e5')
_RC_RE = re.compile(r'^r(\d+)c(\d+)(?:-.*)?$', re.IGNORECASE | re.DOTALL)
_DEVICE_RE = re.compile(r'-dev(\d{1,5})$', re.IGNORECASE)
_PER_DEVICE = 3
_DATED_RE = re.compile(r'^v(\d{1,5})s(\d{1,2})$', re.IGNORECASE)
_ROLE_LOCALS = {'admin', 'test', 'info', 'root', 'support', 'example', 'sales', 'contact'}

_FIRST_DAY = datetime.date(2016, 1, 1)
_LAST_DAY = datetime.date(2026, 10, 31)  # fixed, so data never depends on the wall clock
_SPAN_DAYS = (_LAST_DAY - _FIRST_DAY).days

_PASSWORD_CHARS = string.ascii_letters + string.digits + '!@#$%&*?-_.+='
_SIGHTING_WEIGHTS = (260, 161, 116, 78, 50, 32, 20, 13, 8, 5, 3, 2, 1)
_BROWSERS = (
    'Google Chrome 120.0.6099.130',
    'Microsoft Edge 119.0.2151.97',
    'Mozilla Firefox 118.0',
    'Opera GX 104.0',
    'Brave 1.61',
)
_OSES = (
    'Windows 10 Pro x64',
    'Windows 11 Home x64',
    'Windows 10 Enterprise x64',
    'Windows 7 Ultimate x86',
    'Windows 11 Pro x64',
)
_COUNTRIES = (
    ('United States', 'US', 'en-us'),
    ('Germany', 'DE', 'de-de / en-us'),
    ('Brazil', 'BR', 'pt-br'),
    ('India', 'IN', 'en-in / hi-in'),
    ('France', 'FR', 'fr-fr'),
    ('Vietnam', 'VN', 'vi-vn / en-us'),
    ('Poland', 'PL', 'pl-pl'),
    ('Mexico', 'MX', 'es-mx'),
)
_STEALER_FILES = (
    'Set-up.exe',
    'installer_x64.exe',
    'crack.exe',
    'AdobeUpdate.exe',
    'svchost32.exe',
    'KMSAuto.exe',
)
_FIRST_NAMES = ('Alex', 'Maria', 'John', 'Priya', 'Chen', 'Fatima', 'Lukas', 'Sofia', 'Omar')
_LAST_NAMES = ('Smith', 'Garcia', 'Nguyen', 'Muller', 'Kowalski', 'Silva', 'Khan', 'Dubois')
_JOB_TITLES = (
    'Accountant',
    'Software Engineer',
    'Sales Manager',
    'HR Specialist',
    'IT Administrator',
    'Marketing Director',
    'Analyst',
)
_HASH_TYPES = ('bcrypt', 'md5', 'sha1', 'sha256', 'md5')
_STEALERS = ('RedLine', 'Raccoon', 'Vidar', 'Lumma', 'StealC', 'MetaStealer')
_SYLLABLES = ('zen', 'tri', 'vo', 'lex', 'ka', 'mo', 'ra', 'quin', 'dal', 'fi', 'bor', 'nex')
_BREACH_CATEGORIES = ('exfiltrated', 'exposed', 'scraped', 'phished', 'unknown')
SESSION_SEVERITIES = (26, 30)
_COOKIE_NAMES = ('SID', 'sessionid', 'JSESSIONID', 'auth_token', '__Secure-3PSID', 'ESTSAUTH')
_BCRYPT_ALPHABET = './' + string.ascii_uppercase + string.ascii_lowercase + string.digits


def _sha256_int(text):
    return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest(), 'big')


def _rng(*parts):
    return random.Random(_sha256_int('\x1f'.join(str(p) for p in parts)))


def _iso_day(day):
    return f'{day.isoformat()}T00:00:00Z'


def normalized(kind, value):
    """The observable as the records are keyed: trimmed, e-mails, domains and IPs lower-cased."""
    return _normalize(kind, value)


def _normalize(kind, value):
    value = value.strip()
    if kind in ('emails', 'domains', 'ips'):
        value = value.lower()
    return value


def parse_rc_label(label):
    """(N, M) for an ``r{N}c{M}[-...]`` label, or None. ``none`` counts as (0, 0)."""
    if label.lower() == 'none':
        return 0, 0
    m = _RC_RE.match(label)
    if not m:
        return None
    return min(int(m.group(1)), MAX_RECORDS), int(m.group(2))


def _label(kind, value):
    if kind == 'emails':
        return value.rpartition('@')[0] if '@' in value else None
    if kind == 'domains':
        return value.split('.', 1)[0]
    if kind == 'usernames':
        return value
    return None


def _poisson(rng, lam):
    lam = min(lam, 100.0)
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def parse_dated_label(label):
    """[(days ago, severity), ...] for a ``v{D}s{S}_v{D}s{S}`` label, or None."""
    if not label:
        return None
    tokens = [_DATED_RE.match(token) for token in label.split('_')]
    if not all(tokens):
        return None
    return [(int(t.group(1)), int(t.group(2))) for t in tokens]


def _dates_and_severities(kind, value, n, rng):
    """Each record's publish day and severity, newest first."""
    dated = parse_dated_label(_label(kind, value))
    if dated is not None:
        today = datetime.datetime.now(datetime.UTC).date()
        return sorted(
            ((today - datetime.timedelta(days=ago), sev) for ago, sev in dated), reverse=True
        )
    days = sorted((rng.randrange(_SPAN_DAYS + 1) for _ in range(n)), reverse=True)
    return [
        (
            _FIRST_DAY + datetime.timedelta(days=offset),
            25 if kind == 'ips' else SEVERITY_PATTERN[i % len(SEVERITY_PATTERN)],
        )
        for i, offset in enumerate(days)
    ]


def _plan(kind, value):
    """(record count, catalog count) for an observable."""
    label = _label(kind, value)
    dated = parse_dated_label(label)
    if dated is not None:
        return len(dated), len(dated)
    rc = parse_rc_label(label) if label is not None else None
    if rc is not None:
        n, m = rc
        if n == 0:
            return 0, 0
        return n, max(1, min(n, m))
    rng = _rng('plan', kind, value)
    if (label is not None and label.lower() in _ROLE_LOCALS) or rng.random() < 0.01:
        # Role and junk accounts collect far more records (spec §6.3: Pareto tail).
        n = int(3 * rng.paretovariate(1.3))
    elif rng.random() < 0.45:
        n = 0
    else:
        # 1 + NegBin(mean 1.5, dispersion 0.5) as a gamma-Poisson mixture.
        n = 1 + _poisson(rng, rng.gammavariate(0.5, 3.0))
    n = max(0, min(n, RANDOM_CAP))
    if n == 0:
        return 0, 0
    return n, max(1, min(n, int(round(n * 0.7 + rng.uniform(-0.5, 0.5)))))


def _catalog_base(value):
    return 20000 + _sha256_int(value) % 40000


def catalog_ids_for(kind, value):
    """Distinct catalog ids that ``records_for(kind, value)`` uses, in first-use order."""
    value = _normalize(kind, value)
    if not _valid_observable(kind, value):
        return []
    n, m = _plan(kind, value)
    base = _catalog_base(value)
    return [base + j for j in range(min(n, m))]


def _valid_observable(kind, value):
    if kind not in KINDS:
        raise ValueError('unknown kind {!r} (expected one of {})'.format(kind, ', '.join(KINDS)))
    if not value:
        return False
    if kind == 'emails':
        local, _, domain = value.rpartition('@')
        return bool(local and domain)
    if kind == 'ips':
        return _ip_pool(value) is not None
    return True


def _ip_pool(value):
    """The network a queried IP or ``a.b.c.d_nn`` CIDR covers, or None if it is no IP."""
    try:
        return ipaddress.ip_network(value.replace('_', '/'), strict=False)
    except ValueError:
        return None


def _password(rng):
    return ''.join(rng.choice(_PASSWORD_CHARS) for _ in range(rng.randint(6, 16)))


def _ipv4(rng):
    prefix = rng.choice(('192.0.2', '198.51.100', '203.0.113'))
    return f'{prefix}.{rng.randint(1, 254)}'


def _ipv6(rng):
    return f'2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}'


def _ip_in(rng, network):
    if network.num_addresses == 1:
        return str(network.network_address)
    offset = rng.randrange(network.num_addresses)
    return str(network.network_address + offset)


def _hash_password(rng, plaintext):
    kind = rng.choice(_HASH_TYPES)
    salt = None
    if kind == 'bcrypt':
        tail = ''.join(rng.choice(_BCRYPT_ALPHABET) for _ in range(53))
        return '$2a$10$' + tail, kind, None
    if rng.random() < 0.6:
        salt = f'{rng.getrandbits(64):016x}'
    digest = getattr(hashlib, kind)(((salt or '') + plaintext).encode('utf-8')).hexdigest()
    return digest, kind, salt


def _account(kind, value, index, n, rng):
    """(email, username-or-None) that a record is about."""
    if kind == 'emails':
        return value, None
    if kind == 'domains':
        accounts = max(1, (n + 1) // 2)
        return f'user{index % accounts}@{value}', None
    if kind == 'usernames':
        local = re.sub(r'[^a-z0-9._+-]', '', value.lower()) or 'user'
        mailbox = ('mail.example', 'webmail.example', 'inbox.example')[_sha256_int(value) % 3]
        return f'{local}@{mailbox}', value
    accounts = max(1, (n + 1) // 2)
    corp = f'corp-{_sha256_int(value) % 1000}.example'
    return f'user{index % accounts}@{corp}', None


def _machine_fields(rng, publish_day, email_user, ip_network, queried):
    country, code, keyboard = rng.choice(_COUNTRIES)
    if ip_network is not None:
        ips = [queried if ip_network.num_addresses == 1 else _ip_in(rng, ip_network)]
        if rng.random() < 0.3:
            ips.append(_ipv4(rng) if ip_network.version == 6 else _ipv6(rng))
    else:
        ips = [_ipv4(rng)]
        if rng.random() < 0.25:
            ips.append(_ipv6(rng))
    lag = int(min(2000, max(1, math.exp(rng.gauss(math.log(367), 1.0)))))
    infected = datetime.datetime.combine(
        publish_day - datetime.timedelta(days=lag), datetime.time()
    ) + datetime.timedelta(seconds=rng.randrange(86400))
    if rng.random() < 0.5:
        machine_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    else:
        machine_id = f'{rng.getrandbits(128):032X}'
    user_dir = re.sub(r'[^A-Za-z0-9]', '', email_user)[:12] or 'user'
    return {
        'infected_machine_id': machine_id,
        'user_browser': rng.choice(_BROWSERS),
        'user_os': rng.choice(_OSES),
        'ip_addresses': ips,
        'country': country,
        'country_code': code,
        'keyboard_languages': keyboard,
        'infected_path': (
            f'C:\\Users\\{user_dir}\\AppData\\Local\\Temp\\{rng.choice(_STEALER_FILES)}'
        ),
        'infected_time': infected.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'user_hostname': 'DESKTOP-{}'.format(
            ''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(7))
        ),
    }


def _machine(kind, value, infected):
    """The machine of an observable's ``infected``-th infostealer record: three records a
    machine, or the one big machine an ``-dev{R}`` label asks for."""
    big = _DEVICE_RE.search(_label(kind, value) or '')
    if big:
        return compass.big_machine_id(int(big.group(1)), f'{kind}:{value}')
    return compass.machine_id(kind, value, infected // _PER_DEVICE)


def _target(rng):
    prefix = rng.choice(('login', 'portal', 'shop', 'mail', 'bank'))
    site = f'{prefix}-{rng.randint(1, 999)}.example'
    path = rng.choice(('/login', '/signin', '/account/login', '/auth', '/'))
    return f'https://{site}{path}', site


def _cookie_fields(rng, publish_day, record):
    """A stolen session cookie (sev 26/30, spec §2.5): its own random stream, so that adding
    it changes no other field of any record."""
    expires = publish_day + datetime.timedelta(days=rng.randint(7, 400))
    return {
        'cookie_domain': '.' + record.get('target_domain', 'login.example'),
        'cookie_name': rng.choice(_COOKIE_NAMES),
        'cookie_value': ''.join(rng.choice(_BCRYPT_ALPHABET) for _ in range(40)),
        'cookie_expiration': f'{expires.isoformat()}T00:00:00Z',
    }


def records_for(kind, value):
    """Breach records for one observable, newest ``spycloud_publish_date`` first."""
    value = _normalize(kind, value)
    if not _valid_observable(kind, value):
        return []
    n, m = _plan(kind, value)
    if n == 0:
        return []
    rng = _rng('records', kind, value)
    base = _catalog_base(value)
    ip_network = _ip_pool(value) if kind == 'ips' else None
    records = []
    infected = 0
    for i, (day, severity) in enumerate(_dates_and_severities(kind, value, n, rng)):
        email, username = _account(kind, value, i, n, rng)
        email_user, _, email_domain = email.rpartition('@')
        record = {
            'document_id': str(uuid.uuid5(_NS, f'{kind}:{value}:{i}')),
            'source_id': base + (i % m),
            'spycloud_publish_date': _iso_day(day),
            'severity': severity,
            'email': email,
            'email_domain': email_domain,
            'email_username': email_user,
            'domain': email_domain,
        }
        if username is not None:
            record['username'] = username
        if severity >= 20:
            plaintext = _password(rng)
            record.update(
                password=plaintext,
                password_type='plaintext',
                password_plaintext=plaintext,
                sighting=rng.choices(range(1, 14), _SIGHTING_WEIGHTS)[0],
            )
            if severity >= 25 or rng.random() < 0.5:
                record['target_url'], record['target_domain'] = _target(rng)
            if severity >= 25:
                record.update(_machine_fields(rng, day, email_user, ip_network, value))
                record['log_id'] = hashlib.sha256(f'log:{value}:{i}'.encode()).hexdigest()
                record.update(compass.identity(_machine(kind, value, infected)))
                infected += 1
            if severity in SESSION_SEVERITIES:
                record.update(_cookie_fields(_rng('cookie', kind, value, i), day, record))
        elif severity == 5:
            if rng.random() < 0.6:
                digest, hash_type, salt = _hash_password(rng, _password(rng))
                record.update(password=digest, password_type=hash_type)
                if salt is not None:
                    record['salt'] = salt
            else:
                record.update(
                    full_name=f'{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}',
                    job_title=rng.choice(_JOB_TITLES),
                    phone=f'+1-555-{rng.randrange(1000):03d}-{rng.randrange(10000):04d}',
                )
        records.append(record)
    return records


def _catalog_kind(catalog_id):
    if catalog_id % 10 == 7:
        return 'combolist'
    if catalog_id % 10 == 3:
        return 'infostealer'
    return 'breach'


def catalog(catalog_id):
    """The catalog (breach source) entry for ``catalog_id``; see spec §2.6."""
    catalog_id = int(catalog_id)
    rng = _rng('catalog', catalog_id)
    kind = _catalog_kind(catalog_id)
    publish = _FIRST_DAY + datetime.timedelta(days=rng.randrange(_SPAN_DAYS + 1))
    acquired = publish - datetime.timedelta(days=rng.randint(1, 21))
    num_records = int(math.exp(rng.uniform(math.log(50_000), math.log(250_000_000))))
    name = ''.join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    sensitive = kind == 'breach' and catalog_id % 29 == 13
    if kind == 'combolist':
        title = f'Combolist {name}'
        short_title = title
        description = (
            'A combolist of e-mail and password pairs collected from many earlier '
            'breaches and shared on a criminal forum.'
        )
        site, main_category, category = 'n/a', 'combolist', 'combolist'
        assets = {'email': num_records, 'password': num_records}
    elif kind == 'infostealer':
        family = rng.choice(_STEALERS)
        title = '{} Stealer Logs {}'.format(family, publish.strftime('%b %Y'))
        short_title = f'{family} Stealer Logs'
        description = (
            f'Credentials and device data harvested by the {family} infostealer from '
            'infected machines.'
        )
        site, main_category, category = 'n/a', 'malware', 'infostealer'
        assets = {
            'email': num_records,
            'password': num_records,
            'username': num_records // 3,
            'target_url': num_records,
            'ip_addresses': num_records,
            'infected_machine_id': num_records,
            'log_id': num_records,
            'user_browser': num_records,
            'user_os': num_records,
        }
    else:
        site = f'breach-{catalog_id}.example'
        title = 'Sensitive Source' if sensitive else f'{name} Breach'
        short_title = 'Sensitive Source' if sensitive else name
        description = (
            f'On {acquired.strftime("%B %d, %Y")}, {site} suffered a breach '
            'exposing user account data.'
        )
        main_category, category = 'breach', rng.choice(_BREACH_CATEGORIES)
        assets = {
            'email': num_records,
            'password': int(num_records * rng.uniform(0.3, 1.0)),
            'username': int(num_records * rng.uniform(0.1, 0.9)),
        }
        if rng.random() < 0.5:
            assets['full_name'] = int(num_records * rng.uniform(0.1, 0.8))
            assets['phone'] = int(num_records * rng.uniform(0.05, 0.5))
    public = rng.random() < 0.4
    entry = {
        'id': catalog_id,
        'uuid': str(uuid.uuid5(_NS, f'catalog:{catalog_id}')),
        'title': title,
        'short_title': short_title,
        'description': description,
        'site_description': '%s is an online service with a global user base.'
        % (site if site != 'n/a' else name),
        'site': site,
        'type': 'PUBLIC' if public else 'PRIVATE',
        'confidence': rng.choices((3, 2, 1), (85, 8, 7))[0],
        'acquisition_date': _iso_day(acquired),
        'spycloud_publish_date': _iso_day(publish),
        'num_records': num_records,
        'assets': assets,
        'premium_flag': 'YES',
        'tlp': 'amber',
        'breach_main_category': main_category,
        'breach_category': category,
        'consumer_category': 'publicexposure' if public else 'privateexposure',
        'sensitive_source': sensitive,
    }
    if kind == 'combolist':
        entry['combo_list_flag'] = 'YES'  # never "NO": the key is absent instead (spec §2.6)
    if catalog_id % 13 == 5:
        del entry['site_description']
    return entry


def _identifier_type(identifier):
    if '@' in identifier:
        return 'email'
    if _ip_pool(identifier) is not None:
        return 'ip'
    return 'subdomain' if identifier.count('.') >= 2 else 'domain'


# The simulated tenant's watchlist when a key first uses it: the demo data's domains, verified,
# one domain still to verify, a few addresses and an IP.
SEED_WATCHLIST = (
    ('example.org', 'YES'),
    ('example.com', 'YES'),
    ('example.net', 'YES'),
    ('r6c3.example.net', 'YES'),
    ('pending.example', 'NO'),
    ('admin@example.org', 'YES'),
    ('jane.doe@example.com', 'YES'),
    ('192.0.2.1', 'YES'),
)
WATCHLIST_TYPES = ('email', 'domain', 'subdomain', 'ip')


def identifier_type(identifier):
    """The watchlist type an identifier is: email, ip, subdomain (3+ labels) or domain."""
    return _identifier_type(identifier.strip().lower())


def watchlist_item(identifier):
    """A watchlist entry (spec §2.4) for any identifier: the simulated tenant watches all."""
    identifier = identifier.strip().lower()
    rng = _rng('watchlist', identifier)
    last = _LAST_DAY - datetime.timedelta(days=rng.randrange(60))
    return {
        'identifier_name': identifier,
        'identifier_type': _identifier_type(identifier),
        'status': 'ACTIVE',
        'verified': 'YES',
        'verification_secret': str(uuid.uuid5(_NS, f'verify:{identifier}')),
        'last_discovered': _iso_day(last),
        'corporate_record_count': rng.randrange(5000),
        'infected_employee_record_count': rng.randrange(60),
        'infected_consumer_record_count': rng.randrange(400),
        'infected_user_record_count': rng.randrange(200),
    }
