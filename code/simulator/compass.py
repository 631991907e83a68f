"""Compass: every record stolen from an infected machine, a pure function of the machine's id.

SpyCloud's ``compass/data/devices/{id,id,...}`` answers all the records of the infostealer
logs of those machines (the SpyCloud API spec §2.4 and §8). The simulator has no store of
devices: a device's profile (hostname, OS, IPs, MAC), its records and their count all follow
from its ``infected_machine_id``, so the breach records that name a machine
(simulator/data.py) and the Compass answer about it agree without sharing state.

A machine id ``DE71CE`` + five digits R + hex (``big_machine_id``) holds exactly R records:
the device with hundreds of records that paging is tested with. Other machines hold 2 to 10.
Every third record of a device is ``type: unverified`` (an account outside the customer's
verified domains), masked as SpyCloud masks it: ``wer****r@gmail.com``, ``********``.
"""

import datetime
import hashlib
import random
import re
import string
import uuid

_NS = uuid.UUID('0c4f3d1e-7a92-4b6e-9f18-3d2a5c7e8b41')
_BIG = re.compile(r'^DE71CE(\d{5})[0-9A-F]*$')
_FIRST_DAY = datetime.date(2016, 1, 1)  # as simulator/data.py: never the wall clock
_SPAN_DAYS = 3950
_OSES = (
    'Windows 10 Pro x64',
    'Windows 11 Home x64',
    'Windows 10 Enterprise x64',
    'Windows 11 Pro x64',
)
_BROWSERS = ('Google Chrome 120.0.6099.130', 'Microsoft Edge 119.0.2151.97', 'Mozilla Firefox 118')
_SITES = (
    'login.microsoftonline.com',
    'accounts.google.com',
    'github.com',
    'slack.com',
    'vpn.example.org',
    'portal.example.com',
    'mail.example.net',
    'www.paypal.com',
    'www.netflix.com',
    'discord.com',
    'steamcommunity.com',
    'www.amazon.com',
)
_MAILBOXES = ('gmail.com', 'outlook.com', 'example.org', 'yahoo.com')
_UNVERIFIED_EVERY = 3
SIZE_MIN, SIZE_MAX = 2, 10


def _rng(*parts):
    seed = hashlib.sha256('\x1f'.join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed, 'big'))


def big_machine_id(records, tag=''):
    """The id of a machine that holds exactly ``records`` records (at most 99,999)."""
    tail = hashlib.sha256(f'big:{records}:{tag}'.encode()).hexdigest().upper()[:21]
    return f'DE71CE{min(records, 99_999):05d}{tail}'


def machine_id(*seed):
    """A machine id drawn from ``seed``: a stealer's hex id or a SpyCloud UUID, as the spec
    says both occur and cannot be told apart."""
    rng = _rng('machine', *seed)
    if rng.random() < 0.5:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f'{rng.getrandbits(128):032X}'


def size(machine):
    """How many records the machine's logs hold."""
    big = _BIG.match(machine)
    if big:
        return int(big.group(1))
    return _rng('size', machine).randint(SIZE_MIN, SIZE_MAX)


def profile(machine):
    """The device's own facts, the same on every record of it."""
    rng = _rng('profile', machine)
    infected = datetime.datetime.combine(
        _FIRST_DAY + datetime.timedelta(days=rng.randrange(_SPAN_DAYS)), datetime.time()
    ) + datetime.timedelta(seconds=rng.randrange(86400))
    fields = {
        'infected_machine_id': machine,
        'user_hostname': 'DESKTOP-'
        + ''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(7)),
        'user_os': rng.choice(_OSES),
        'user_browser': rng.choice(_BROWSERS),
        'ip_addresses': [f'198.51.100.{rng.randint(1, 254)}'],
        'infected_time': infected.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'log_id': hashlib.sha256(f'log:{machine}'.encode()).hexdigest(),
        'infected_path': 'C:\\Users\\user\\AppData\\Local\\Temp\\Set-up.exe',
    }
    if rng.random() < 0.7:
        fields['mac_address'] = ':'.join(f'{rng.randrange(256):02x}' for _ in range(6))
    return fields


def identity(machine):
    """The fields a breach record naming the machine takes from its profile."""
    facts = profile(machine)
    keep = ('infected_machine_id', 'user_hostname', 'user_os', 'mac_address')
    return {name: facts[name] for name in keep if name in facts}


def records(machine):
    """Every record of the machine's logs, newest published first."""
    facts = profile(machine)
    infected = datetime.datetime.strptime(facts['infected_time'], '%Y-%m-%dT%H:%M:%SZ')
    published = (infected + datetime.timedelta(days=1 + _rng('lag', machine).randrange(400))).date()
    owner = _rng('owner', machine)
    user = ''.join(owner.choice(string.ascii_lowercase) for _ in range(7))
    found = [_record(machine, facts, index, user, published) for index in range(size(machine))]
    found.sort(key=lambda record: record['spycloud_publish_date'], reverse=True)
    return found


def _record(machine, facts, index, user, published):
    rng = _rng('record', machine, index)
    site = _SITES[index % len(_SITES)] if index < len(_SITES) else f'app-{index}.example'
    mailbox = _MAILBOXES[rng.randrange(len(_MAILBOXES))]
    password = ''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(12))
    day = published - datetime.timedelta(days=rng.randrange(30))
    stamp = facts['infected_time']
    record = {
        'document_id': str(uuid.uuid5(_NS, f'{machine}:{index}')),
        'source_id': 20003 + 10 * (int(hashlib.sha256(machine.encode()).hexdigest(), 16) % 3000),
        'spycloud_publish_date': f'{day.isoformat()}T00:00:00Z',
        'severity': 25,
        'email': f'{user}@{mailbox}',
        'email_domain': mailbox,
        'email_username': user,
        'domain': mailbox,
        'password': password,
        'password_type': 'plaintext',
        'password_plaintext': password,
        'target_url': f'https://{site}/login?session=tok{rng.getrandbits(32):x}',
        'target_domain': site,
        'target_subdomain': site,
        **facts,
        'infected_time': stamp,
    }
    if index % 7 == 6:  # a stolen session: cookie data, never to be shown
        record.update(
            severity=26,
            cookie_domain=f'.{site}',
            cookie_name='sessionid',
            cookie_value=f'cv{rng.getrandbits(64):x}',
            cookie_expiration='2027-01-01T00:00:00Z',
        )
    if index % _UNVERIFIED_EVERY == _UNVERIFIED_EVERY - 1:
        record = masked(record)
    return record


def masked(record):
    """An unverified record as SpyCloud sends it: the account partly starred, the secrets
    replaced by eight stars."""
    out = dict(record, type='unverified')
    user = record['email_username']
    out['email_username'] = f'{user[0]}{"*" * (len(user) - 2)}{user[-1]}'
    out['email'] = f'{out["email_username"]}@{record["email_domain"]}'
    for name in ('password', 'password_plaintext', 'cookie_value', 'cookie_name'):
        if name in out:
            out[name] = '********'
    return out


def records_of(machines):
    """The records of every machine of a comma list, newest published first; an unknown-looking
    id is a machine like any other (SpyCloud would answer it empty: the simulator cannot tell)."""
    ids = list(dict.fromkeys(m.strip() for m in machines.split(',') if m.strip()))
    found = [record for machine in ids for record in records(machine)]
    found.sort(key=lambda record: record['spycloud_publish_date'], reverse=True)
    return found


def summary(machine, published):
    """``compass/devices``'s entry for a machine (spec §2.4)."""
    facts, found = profile(machine), records(machine)
    applications = {record['target_domain'] for record in found}
    entry = {
        'infected_machine_id': machine,
        'application_count': len(applications),
        'ip_addresses': facts['ip_addresses'],
        'source_id': found[0]['source_id'],
        'spycloud_publish_date': published,
        'user_os': facts['user_os'],
        'user_hostname': facts['user_hostname'],
        'infected_time': facts['infected_time'],
    }
    return entry


def summaries(tenant_records):
    """``compass/devices`` over the tenant's records of a period (``tenant_records``, those
    published within since/until): one entry per machine its infostealer records name, dated
    by its newest of them, newest first."""
    newest = {}
    for record in tenant_records:
        machine = record.get('infected_machine_id')
        if machine and record.get('severity', 0) >= 25:
            stamp = record['spycloud_publish_date']
            newest[machine] = max(newest.get(machine, stamp), stamp)
    order = sorted(newest.items(), key=lambda item: item[1], reverse=True)
    return [summary(machine, stamp) for machine, stamp in order]
