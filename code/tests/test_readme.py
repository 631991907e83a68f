"""The README is the manual: every setting is in its table, with the default the code has."""

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from spycloud_relay.config import Settings
from spycloud_relay.sync.settings import SyncSettings

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

README = (Path(__file__).resolve().parents[2] / 'README.md').read_text()


def documented_defaults():
    """NAME → the default cell of its Settings-table row (rows may pair `A` / `B`)."""
    found = {}
    for row in README.splitlines():
        cells = [cell.strip() for cell in row.split('|')]
        if len(cells) < 4 or not cells[1].startswith('`'):
            continue
        names = re.findall(r'`([A-Z][A-Z0-9_]+)`', cells[1])
        defaults = [d.strip() for d in cells[2].split(' / ')]
        if names and len(defaults) == len(names):
            found.update(zip(names, defaults, strict=True))
    return found


def shown(default):
    if isinstance(default, bool):
        return f'`{str(default).lower()}`'
    if isinstance(default, tuple):
        return f'`{",".join(map(str, default))}`'
    if isinstance(default, float) and default.is_integer():
        return f'`{int(default)}`'
    return f'`{default}`' if default != '' else '*(empty)*'


@pytest.mark.parametrize('field', fields(Settings), ids=lambda f: f.name.upper())
def test_every_setting_is_documented_with_its_default(field):
    documented = documented_defaults()
    assert field.name.upper() in documented, f'{field.name.upper()} is not in the README'
    assert documented[field.name.upper()] == shown(field.default)


@pytest.mark.parametrize('field', fields(SyncSettings), ids=lambda f: f.metadata['env'])
def test_every_sync_setting_is_documented_with_its_default(field):
    """The sync's settings are read from the variable each field names (``env``)."""
    name, documented = field.metadata['env'], documented_defaults()
    assert name in documented, f'{name} is not in the README'
    if field.metadata['required']:
        assert documented[name] == '*(required)*'
    elif field.default is MISSING:  # made when read: the temporary directory's file
        assert documented[name].endswith(Path(field.default_factory()).name + '`')
    else:
        assert documented[name] == shown(field.default)


def test_the_two_commands_are_in_the_quick_start():
    quick_start = README[README.index('## Quick start') : README.index('## Deploy with Docker')]
    assert 'make demo' in quick_start and 'make test' in quick_start
