"""The vendored contract extract must be what Cisco's swagger says today."""

import json

import pytest

from contracts import extract

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it


def test_extract_matches_the_shared_swagger():
    if not extract.SHARED.exists():
        pytest.skip('../shared/contracts is not beside this clone')
    swagger = json.loads(extract.SHARED.read_text())
    vendored = json.loads(extract.EXTRACT.read_text())['definitions']
    assert vendored == extract.closure(swagger['definitions'])


def test_extract_has_the_definitions_the_tests_use():
    definitions = json.loads(extract.EXTRACT.read_text())['definitions']
    for name in (
        'ModuleObserveBundle',
        'Sighting',
        'Indicator',
        'Relationship',
        'ModuleErrorMessage',
    ):
        assert definitions[name]['type'] == 'object'
    assert definitions['Sighting']['additionalProperties'] is False
