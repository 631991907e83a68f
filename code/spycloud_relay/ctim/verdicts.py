"""Evidence of exposure → CTIM Judgements and Verdicts. Pure functions, no I/O.

An account is Suspicious (disposition 3) while a qualifying record is younger than the
window; the verdict's ``valid_time`` ends exactly when the newest one ages out. The relay
never says Clean: absence from SpyCloud is not evidence of safety. A record dated after the
rule's today (a clock or data error at SpyCloud, up to ``9999-12-31``) counts as published
today: a verdict's validity never rests on a date in the future.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from spycloud_relay.ctim import facts
from spycloud_relay.ctim.mapping import (
    SCHEMA_VERSION,
    SOURCE,
    MappingOptions,
    catalog_of,
    ctim_time,
    cut,
    transient_id,
)
from spycloud_relay.spycloud.lookup import VerdictRule
from spycloud_relay.spycloud.models import SEVERITY_NAMES, Catalog, Evidence, Exposure, Observable

SUSPICIOUS, SUSPICIOUS_NAME = 3, 'Suspicious'
PRIORITY = 90  # the highest an automated source may claim
TLP_LEVELS = ('white', 'green', 'amber', 'red')
REASON_MAX = 1024  # CTIM's limit of a judgement's reason


def published(evidence: Evidence, rule: VerdictRule) -> date:
    """The newest qualifying record's publish day, or the rule's today when that is later."""
    return min(evidence.newest.published.date(), rule.today)


def valid_time(evidence: Evidence, rule: VerdictRule) -> dict[str, str]:
    """From the newest qualifying record's publish date to that date plus the window."""
    start = datetime.combine(published(evidence, rule), time(), tzinfo=UTC)
    return {
        'start_time': ctim_time(start),
        'end_time': ctim_time(start + timedelta(days=rule.days)),
    }


def judgement_id(observable: Observable, evidence: Evidence, rule: VerdictRule) -> str:
    seed = (
        f'{observable.type}|{observable.value}|{evidence.newest.document_id}|'
        f'{rule.min_severity}|{rule.days}'
    )
    return transient_id('judgement', seed)


def verdict(
    observable: Observable,
    evidence: Evidence,
    rule: VerdictRule,
    judgement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        'type': 'verdict',
        'disposition': SUSPICIOUS,
        'disposition_name': SUSPICIOUS_NAME,
        'observable': observable.as_ctim(),
        'valid_time': valid_time(evidence, rule),
    }
    if judgement is not None:
        doc['judgement_id'] = judgement['id']
    return doc


def reason(evidence: Evidence, rule: VerdictRule) -> str:
    """``7 exposures in 90 days, newest 2026-11-20, worst: infostealer (25). Reset the
    password; ...``: counts and kinds, then what to do, never a value from the records."""
    count = evidence.hits
    worst = evidence.worst_severity
    kind = SEVERITY_NAMES.get(worst, 'severity')
    what = facts.exposed(evidence.newest) | facts.by_severity(worst)
    text = (
        f'{count} exposure{"s" if count != 1 else ""} in {rule.days} days, newest '
        f'{published(evidence, rule).isoformat()}, worst: {kind} ({worst}). '
        f'{facts.remediation(what)}'
    )
    return cut(text, REASON_MAX)


def judgement(
    observable: Observable,
    evidence: Evidence,
    rule: VerdictRule,
    catalog: Catalog | None,
    options: MappingOptions,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        'id': judgement_id(observable, evidence, rule),
        'type': 'judgement',
        'schema_version': SCHEMA_VERSION,
        'source': SOURCE,
        'observable': observable.as_ctim(),
        'disposition': SUSPICIOUS,
        'disposition_name': SUSPICIOUS_NAME,
        'priority': PRIORITY,
        'confidence': 'High',
        'severity': 'Critical' if evidence.worst_severity >= 25 else 'High',
        'valid_time': valid_time(evidence, rule),
        'reason': reason(evidence, rule),
        'external_ids': [evidence.newest.document_id],
    }
    portal_id = catalog.portal_id if catalog is not None else None
    if portal_id:
        doc['reason_uri'] = doc['source_uri'] = options.ui_url.format(uuid=portal_id)
    tlp = (catalog.text('tlp') or '').lower() if catalog is not None else ''
    if tlp in TLP_LEVELS:
        doc['tlp'] = tlp
    return doc


def exposure_verdicts(
    exposure: Exposure, rule: VerdictRule, options: MappingOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(judgements, verdicts) of an observe Exposure: one of each when it has evidence."""
    evidence = exposure.evidence
    if evidence is None:
        return [], []
    catalog = catalog_of(exposure.catalogs, evidence.newest.source_id)
    doc = judgement(exposure.observable, evidence, rule, catalog, options)
    return [doc], [verdict(exposure.observable, evidence, rule, doc)]
