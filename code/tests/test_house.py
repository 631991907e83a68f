"""The house rules the layout keeps: layers import downwards, no thread-local carries request
state, and functions stay small enough to read as steps."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure  # reads files: `make test-fast` runs it
CODE = Path(__file__).resolve().parents[1]
LAYERS = ('api', 'spycloud', 'ctim', 'tiles', 'state')


def modules(*packages):
    for package in packages:
        for path in sorted((CODE / package).glob('*.py')):
            yield path, ast.parse(path.read_text())


def imported(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize('package', ['spycloud', 'ctim', 'tiles', 'state'])
def test_nothing_below_the_routes_imports_the_web_layer(package):
    for path, tree in modules(package):
        wrong = [name for name in imported(tree) if name.split('.')[0] in ('api', 'app', 'flask')]
        assert not wrong, f'{path.relative_to(CODE)} imports {wrong}'


def test_the_state_layer_imports_no_layer_above_it():
    """state/ is the floor: the store and the budget know no SpyCloud type (the models register
    themselves with its codec), so the layers import strictly downwards."""
    above = ('api', 'app', 'spycloud', 'ctim', 'tiles')
    for path, tree in modules('state'):
        wrong = [name for name in imported(tree) if name.split('.')[0] in above]
        assert not wrong, f'{path.relative_to(CODE)} imports {wrong}'


def test_no_thread_local_carries_request_state():
    for path, tree in modules(*LAYERS, '.'):
        text = ast.unparse(tree)
        assert 'threading.local' not in text and 'local()' not in text, path


def test_functions_are_at_most_40_lines():
    """Everywhere in the relay: its layers, the root modules (serving, settings, the CLI) and
    the developer tools beside them."""
    long = [
        f'{path.relative_to(CODE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})'
        for path, tree in modules(*LAYERS, '.')
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 40
    ]
    assert not long


def test_modules_are_at_most_about_400_lines():
    """A module owns one idea: past about 400 lines it holds several."""
    large = [
        f'{path.relative_to(CODE)} ({lines})'
        for path, _ in modules(*LAYERS, '.')
        if (lines := len(path.read_text().splitlines())) > 400
    ]
    assert not large
