"""What the fake XDR (simulator/xdr.py) refuses in an imported entity, as CTIA validates CTIM.

Each check answers the first problem it finds as one short line, or None when the entity is
valid. The rules are CTIM's required fields, closed vocabularies and string limits (its
schemas in threatgrid/ctim, kept outside this repository); IROH's schemas are closed
(``additionalProperties: false``), so a field CTIM does not define is refused too.
"""

import datetime
import re

__all__ = ['problem', 'ENTITY_KEYS', 'CONFIDENCE', 'SEVERITY', 'STATUS', 'TLP']

CONFIDENCE = frozenset({'Info', 'Low', 'Medium', 'High', 'None', 'Unknown'})
SEVERITY = CONFIDENCE | {'Critical'}
STATUS = frozenset(
    {
        'New',
        'Open',
        'Stalled',
        'Containment Achieved',
        'Restoration Achieved',
        'Incident Reported',
        'Closed',
        'Rejected',
    }
)
TLP = frozenset({'red', 'amber', 'green', 'white'})
OBSERVABLE_TYPES = frozenset(
    'acudid amp_computer_guid certificate_common_name certificate_issuer certificate_serial '
    'cisco_cm_id cisco_mid cisco_uc_id cortex_agent_id crowdstrike_id cvm_id cybereason_id '
    'darktrace_id device domain email email_messageid email_subject file_name file_path '
    'google_chromebook_id google_cloud_id hostname imei imsi intune_id ip ipv6 '
    'jamf_management_id mac_address md5 meraki_network_id meraki_node_sn meraki_org_id '
    'ms_machine_id mutex ngfw_id ngfw_name odns_identity odns_identity_label orbital_node_id '
    'pki_serial process_args process_hash process_name process_path process_uid '
    'process_username processor_id registry_key registry_name registry_path s1_agent_id '
    'secure_access_id serial_number service_now_id sha1 sha256 swc_device_id trend_micro_id '
    'url user user_agent'.split()
)
COLUMN_TYPES = frozenset({'observable', 'string', 'markdown', 'integer', 'number', 'url'})
INDICATOR_TYPES = frozenset(
    {
        'Anonymization',
        'C2',
        'Compromised PKI Certificate',
        'Domain Watchlist',
        'Exfiltration',
        'File Hash Watchlist',
        'Host Characteristics',
        'IMEI Watchlist',
        'IMSI Watchlist',
        'IP Watchlist',
        'Login Name',
        'Malicious E-mail',
        'Malware Artifacts',
        'Private Threat Feed',
        'URL Watchlist',
    }
)
LIMITS = {
    'title': 1024,
    'short_description': 2048,
    'description': 5000,
    'source': 2048,
    'source_uri': 2048,
    'producer': 1024,
    'language': 1024,
}
BASE_FIELDS = frozenset(
    {'id', 'type', 'schema_version', 'revision', 'external_ids', 'external_references'}
    | {'timestamp', 'language', 'tlp', 'title', 'description', 'short_description'}
    | {'source', 'source_uri'}
)
FIELDS = {
    'incident': BASE_FIELDS
    | {'confidence', 'status', 'incident_time', 'assignees', 'categories', 'discovery_method'}
    | {'intended_effect', 'promotion_method', 'severity', 'tactics', 'techniques', 'scores'},
    'sighting': BASE_FIELDS
    | {'observed_time', 'confidence', 'count', 'internal', 'severity', 'resolution', 'data'}
    | {'sensor', 'sensor_coordinates', 'targets', 'observables', 'relations', 'context'}
    | {'activity_interval', 'detection_interval', 'modification_interval'},
    'indicator': BASE_FIELDS
    | {'valid_time', 'producer', 'confidence', 'severity', 'negate', 'indicator_type', 'tags'}
    | {'likely_impact', 'kill_chain_phases', 'test_mechanisms', 'specification'}
    | {'composite_indicator_expression'},
    'relationship': BASE_FIELDS | {'relationship_type', 'source_ref', 'target_ref'},
    'judgement': BASE_FIELDS
    | {'observable', 'disposition', 'disposition_name', 'priority', 'confidence', 'severity'}
    | {'valid_time', 'reason', 'reason_uri'},
}
# A bundle's lists of entities, by the type of what they hold.
ENTITY_KEYS = {f'{kind}s': kind for kind in FIELDS}
SCHEMA_VERSION = re.compile(r'\w+\.\w+\.\w+')


def problem(entity, kind):
    """The first thing wrong with ``entity`` (one of a bundle's ``<kind>s``), or None."""
    if not isinstance(entity, dict):
        return 'not an object'
    found = _base(entity, kind)
    if found is None:
        found = _CHECKS[kind](entity)
    return found


def _base(entity, kind):
    if entity.get('type') != kind:
        return f'type must be {kind!r}'
    unknown = sorted(set(entity) - FIELDS[kind])
    if unknown:
        return f'unknown field {unknown[0]!r}'
    version = entity.get('schema_version')
    if not isinstance(version, str) or not SCHEMA_VERSION.fullmatch(version):
        return 'schema_version is required (like 1.3.29)'
    ident = entity.get('id')
    if ident is not None and not (
        isinstance(ident, str) and ident.startswith(('transient:', 'http://', 'https://'))
    ):
        return 'id must be a transient id or a CTIA URL'
    return _strings(entity) or _optional_vocabularies(entity)


def _strings(entity):
    ids = entity.get('external_ids', [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return 'external_ids must be a list of strings'
    for name, limit in LIMITS.items():
        value = entity.get(name)
        if value is not None and not (isinstance(value, str) and len(value) <= limit):
            return f'{name} must be a string of at most {limit} characters'
    return None


def _optional_vocabularies(entity):
    for name, allowed in (('tlp', TLP), ('severity', SEVERITY), ('confidence', CONFIDENCE)):
        if name in entity and entity[name] not in allowed:
            return f'{name} must be one of {", ".join(sorted(allowed))}'
    return None


def _is_time(value):
    if not isinstance(value, str):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        return False
    return True


def _time_map(value, name, required=()):
    if not isinstance(value, dict):
        return f'{name} must be an object'
    for key in required:
        if key not in value:
            return f'{name}.{key} is required'
    for key, moment in value.items():
        if not _is_time(moment):
            return f'{name}.{key} must be an ISO 8601 time'
    return None


def _required(entity, names):
    missing = [name for name in names if name not in entity]
    return f'{missing[0]} is required' if missing else None


def _incident(entity):
    found = _required(entity, ('confidence', 'status', 'incident_time'))
    if found is None and entity['status'] not in STATUS:
        found = f'status must be one of {", ".join(sorted(STATUS))}'
    return found or _time_map(entity['incident_time'], 'incident_time', ('opened',))


def _sighting(entity):
    found = _required(entity, ('observed_time', 'confidence', 'count'))
    if found is None:
        count = entity['count']
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            found = 'count must be an integer of at least 0'
    found = found or _time_map(entity['observed_time'], 'observed_time', ('start_time',))
    return found or _observables(entity.get('observables', [])) or _data(entity)


def _observables(items):
    if not isinstance(items, list):
        return 'observables must be a list'
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get('value'), str)):
            return 'an observable needs a type and a value'
        if item.get('type') not in OBSERVABLE_TYPES:
            return f'observable type {item.get("type")!r} is not in the vocabulary'
    return None


def _data(entity):
    table = entity.get('data')
    if table is None:
        return None
    columns = table.get('columns') if isinstance(table, dict) else None
    rows = table.get('rows') if isinstance(table, dict) else None
    if not isinstance(columns, list) or not isinstance(rows, list):
        return 'data needs columns and rows'
    if not all(isinstance(c, dict) and c.get('type') in COLUMN_TYPES for c in columns):
        return 'data: a column needs a name and a known type'
    if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
        return 'data: each row needs one value per column'
    return None


def _indicator(entity):
    found = _required(entity, ('valid_time', 'producer'))
    found = found or _time_map(entity['valid_time'], 'valid_time')
    kinds = entity.get('indicator_type', [])
    if found is None and not (isinstance(kinds, list) and set(kinds) <= INDICATOR_TYPES):
        found = 'indicator_type holds a value outside the vocabulary'
    return found


def _relationship(entity):
    found = _required(entity, ('relationship_type', 'source_ref', 'target_ref'))
    if found is None and not (
        isinstance(entity['relationship_type'], str) and entity['relationship_type']
    ):
        found = 'relationship_type must be a string'
    return found


def _judgement(entity):
    return _required(entity, ('observable', 'disposition', 'priority', 'valid_time', 'source'))


_CHECKS = {
    'incident': _incident,
    'sighting': _sighting,
    'indicator': _indicator,
    'relationship': _relationship,
    'judgement': _judgement,
}
