"""The Observable the relay passes on (spycloud/models.py): made once from the request's JSON
by api/schemas.py, written back into CTIM as the same ``{"type", "value"}`` object."""

import json
from dataclasses import FrozenInstanceError
from datetime import date

import pytest
from marshmallow import ValidationError

from spycloud_relay.api.schemas import OBSERVABLES
from spycloud_relay.ctim.mapping import MappingOptions, sighting
from spycloud_relay.ctim.verdicts import judgement, verdict
from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud.lookup import VerdictRule
from spycloud_relay.spycloud.models import BreachRecord, Evidence, Exposure, Observable

pytestmark = pytest.mark.pure

RECORD = BreachRecord.from_api(
    {'document_id': 'd-1', 'spycloud_publish_date': '2024-02-03T00:00:00Z', 'severity': 20}
)


def test_of_reads_a_json_object_trimmed_with_its_type_lower_cased():
    observable = Observable.of({'type': ' Email ', 'value': ' a@b.example\t'})
    assert observable == Observable(type='email', value='a@b.example')
    assert (observable.type, observable.value) == ('email', 'a@b.example')


def test_as_ctim_round_trips_and_equal_observables_are_one():
    observable = Observable('domain', 'b.example')
    assert observable.as_ctim() == {'type': 'domain', 'value': 'b.example'}
    assert list(observable.as_ctim()) == ['type', 'value']
    assert Observable.of(observable.as_ctim()) == observable
    assert observable.as_ctim() is not observable.as_ctim()  # a document may change its own
    assert len({observable, Observable('domain', 'b.example'), Observable('ip', 'b')}) == 2
    with pytest.raises(FrozenInstanceError):
        observable.value = 'c.example'  # type: ignore[misc]


def test_the_schema_makes_observables_and_refuses_a_field_that_is_no_string():
    loaded = OBSERVABLES.load([{'type': 'EMAIL', 'value': ' a@b.example', 'extra': 1}])
    assert loaded == [Observable('email', 'a@b.example')]
    with pytest.raises(ValidationError) as refused:
        OBSERVABLES.load([{'type': 'email', 'value': 42}])
    assert refused.value.messages == {0: {'value': ['Not a valid string.']}}


def test_ctim_documents_hold_the_observable_as_the_same_json():
    observable = Observable('email', 'a@b.example')
    written = '{"type": "email", "value": "a@b.example"}'
    doc = sighting(observable, RECORD, None, MappingOptions())
    assert json.dumps(doc['observables']) == f'[{written}]'
    assert json.dumps(doc['targets'][0]['observables']) == f'[{written}]'
    evidence = Evidence(hits=1, newest=RECORD, worst_severity=20)
    rule = VerdictRule(min_severity=20, days=90, today=date(2024, 3, 1))
    judged = judgement(observable, evidence, rule, None, MappingOptions())
    assert json.dumps(judged['observable']) == written
    assert json.dumps(verdict(observable, evidence, rule)['observable']) == written


def test_an_exposure_is_built_by_name():
    observable, warning = Observable('user', 'someone'), RelayWarning('invalid argument', 'no')
    empty = Exposure.empty(observable, warning)
    assert (empty.observable, empty.records, empty.hits, empty.catalogs) == (observable, [], 0, {})
    assert empty.warnings == [warning] and empty.evidence is None
    evidence = Evidence(hits=1, newest=RECORD, worst_severity=20)
    judged = Exposure.judged(observable, evidence)
    assert (judged.evidence, judged.warnings, judged.records) == (evidence, [], [])
