"""The simulated customer's watchlist records: SpyCloud's demo tenant, over the last year.

``breach/data/watchlist`` answers every record of the customer's watchlist, newest first. The
demo tenant holds 27,444 records (the SpyCloud API spec, §6.1): about 550 accounts at
the watched domains, 80 breach sources (Zipf-like: the top one holds a third), severities in the
demo's proportions (6 % sev 2, 7 % sev 5, 71 % sev 20, 16 % sev 25). Publish dates are midnight
stamps spread over the 365 days before today (UTC), so every dashboard period has data. The
records are drawn from one fixed seed as ages (days before today), so the tenant has the same
shape on every day: only the dates move. Indexed by publish date.

An infostealer (severity 25) record names one of its account's two machines and carries that
machine's hostname, OS, IPs, MAC, infection time and log id, as Compass describes the machine
(simulator/compass.py, whose ``compass/devices`` lists the tenant's machines).

Every record has a ``record_modification_date``: its publish date, except for a share
(MODIFIED_SHARE, drawn from a seed of its own so that the records themselves stay as they
were) that SpyCloud changed later, a password cracked 1 to MODIFIED_MAX_DAYS days after
publication, at a time of that day. Drawn as ages too, and never today: the latest is
yesterday 23:59:59, in the past whatever the hour. Indexed by modification date as well
(``modified``), for the sync's ``since_modification_date`` pulls.
"""

import bisect
import datetime
import functools
import hashlib
import random
import threading
import uuid

from . import compass

RECORDS = 27_444
ACCOUNTS = 550
SOURCES = 80
DAYS = 365
MODIFIED_SHARE = 0.05
MODIFIED_MAX_DAYS = 30
STAMP = '%Y-%m-%dT%H:%M:%SZ'
SOURCE_BASE = 70_000
SEVERITIES = (2,) * 6 + (5,) * 7 + (20,) * 71 + (25,) * 16
DOMAINS = ('example.org', 'example.com', 'example.net')
_MACHINE_FACTS = (
    'user_hostname',
    'user_os',
    'ip_addresses',
    'mac_address',
    'infected_time',
    'log_id',
)
_NS = uuid.UUID('8d7e3c2a-45f1-4b39-9a0e-2f4c6b1d7e90')
_FIRST = (
    'alex',
    'maria',
    'john',
    'priya',
    'chen',
    'fatima',
    'lukas',
    'sofia',
    'omar',
    'ines',
    'kai',
    'noor',
    'liam',
    'yara',
    'ivan',
    'mei',
    'tom',
    'ana',
    'raj',
    'zoe',
    'ola',
    'ben',
)


def _rng(*parts):
    seed = hashlib.sha256('\x1f'.join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed, 'big'))


def account(index):
    """The e-mail address of account ``index``: a few role accounts collect many records."""
    if index < 3:
        return ('admin', 'test', 'info')[index] + '@' + DOMAINS[0]
    first, last = _FIRST[index % len(_FIRST)], _FIRST[(index * 7 + 3) % len(_FIRST)]
    return f'{first}.{last}{index}@{DOMAINS[index % len(DOMAINS)]}'


_making = threading.Lock()
_indexing = threading.Lock()


def records_by_day(today):
    """{publish date: [records]} for the year before ``today`` (a date), newest day first;
    made once per day (a second or so), while concurrent queries wait for it."""
    with _making:
        return _make(today)


@functools.lru_cache(maxsize=2)
def _make(today):
    rng = _rng('tenant')  # not today's date: every day sees the same tenant, shifted
    accounts = [account(i) for i in range(ACCOUNTS)]
    # admin@, test@, info@ hold 13, 6 and 2 % (spec §6.1: 129, 62, 17 of 1000); the others
    # share the rest with a gentle tail.
    tail = [1.0 / (i + 1) ** 0.6 for i in range(ACCOUNTS - 3)]
    weights = [0.13, 0.06, 0.02] + [0.79 * w / sum(tail) for w in tail]
    source_weights = [1.0 / (i + 1) for i in range(SOURCES)]
    source_days = {s: rng.randrange(DAYS) for s in range(SOURCES)}
    changes = _rng('modified')  # its own seed: the records drawn above stay as they were
    days = {}
    for index in range(RECORDS):
        source = rng.choices(range(SOURCES), source_weights)[0]
        # Most of a source's records arrive on its publish day; the rest trickle in.
        ago = source_days[source] if rng.random() < 0.6 else rng.randrange(DAYS)
        day = today - datetime.timedelta(days=ago)
        email = rng.choices(accounts, weights)[0]
        record = _record(index, day, email, source, rng)
        record.update(_modification(changes, day, ago, record['severity']))
        days.setdefault(day, []).append(record)
    return dict(sorted(days.items(), reverse=True))


def _modification(rng, day, ago, severity):
    """The record's modification fields: its publish date, or for MODIFIED_SHARE of the
    records published two days ago or earlier, a moment 1 to MODIFIED_MAX_DAYS days later and
    before today (a crack of a password: ``record_cracked_date`` too)."""
    if ago < 2 or rng.random() >= MODIFIED_SHARE:
        return {'record_modification_date': f'{day.isoformat()}T00:00:00Z'}
    later = rng.randint(1, min(ago - 1, MODIFIED_MAX_DAYS))
    moment = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(
        days=later, seconds=rng.randrange(86400)
    )
    stamp = moment.strftime(STAMP)
    if severity >= 20:
        return {'record_modification_date': stamp, 'record_cracked_date': stamp}
    return {'record_modification_date': stamp}


def _record(index, day, email, source, rng):
    severity = rng.choice(SEVERITIES)
    user, _, domain = email.partition('@')
    record = {
        'document_id': str(uuid.uuid5(_NS, f'tenant:{index}')),
        'source_id': SOURCE_BASE + source,
        'spycloud_publish_date': f'{day.isoformat()}T00:00:00Z',
        'severity': severity,
        'email': email,
        'email_domain': domain,
        'email_username': user,
        'domain': domain,
    }
    if severity >= 20:
        secret = ''.join(rng.choice('abcdefghjkmnpqrstuvwxyz23456789') for _ in range(10))
        record.update(password=secret, password_type='plaintext', password_plaintext=secret)
    elif severity == 5 and rng.random() < 0.6:
        record.update(password=hashlib.sha1(str(index).encode()).hexdigest(), password_type='sha1')
    if severity >= 25:
        # Infected machines: an employee's laptop leaks many of their credentials at once.
        machine = uuid.uuid5(_NS, f'machine:{email}:{rng.randrange(2)}')
        record.update(
            infected_machine_id=str(machine),
            target_domain='login.example.net',
            target_url='https://login.example.net/',
        )
        # The machine's own facts, as Compass describes it (simulator/compass.py): drawn
        # from its id, not from ``rng``, so every other record stays as it was.
        facts = compass.profile(str(machine))
        record.update({name: facts[name] for name in _MACHINE_FACTS if name in facts})
    return record


def select(today, since, until):
    """The records published from ``since`` to ``until`` (datetimes, both included), newest
    first, read from the day index (a day-sized query touches one day's records)."""
    found = []
    for day, records in records_by_day(today).items():
        moment = datetime.datetime.combine(day, datetime.time())
        if since is not None and moment < since:
            break
        if until is None or moment <= until:
            found.extend(records)
    return found


def modified(today, since, until):
    """The records modified from ``since`` to ``until`` (naive UTC datetimes or None, both
    included), newest published first, as the watchlist answers."""
    stamps, records = _by_modification(today)
    low = 0 if since is None else bisect.bisect_left(stamps, since.strftime(STAMP))
    high = len(stamps) if until is None else bisect.bisect_right(stamps, until.strftime(STAMP))
    return sorted(records[low:high], key=lambda r: r['spycloud_publish_date'], reverse=True)


def by_document(today):
    """document_id → record, for a test's ``modify`` of one of them."""
    return {record['document_id']: record for record in _by_modification(today)[1]}


def _by_modification(today):
    with _indexing:
        return _modification_index(today)


@functools.lru_cache(maxsize=2)
def _modification_index(today):
    """(the modification stamps in order, the records in that order): ISO stamps of one
    format sort as the moments they name."""
    records = [r for day in records_by_day(today).values() for r in day]
    records.sort(key=lambda r: r['record_modification_date'])
    return [r['record_modification_date'] for r in records], records
