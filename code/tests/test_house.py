"""The house rules the layout keeps: one package that is the relay and nothing else, layers
that import downwards, no thread-local carrying request state, and functions small enough to
read as steps."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure  # reads files: `make test-fast` runs it
CODE = Path(__file__).resolve().parents[1]
ROOT = CODE.parent
PACKAGE = CODE / 'spycloud_relay'
LAYERS = ('api', 'spycloud', 'ctim', 'tiles', 'state', 'sync')
# What a checkout has beside the package: the simulator, the tests and the developer tools.
DEVELOPER_TOOLS = ('simulator', 'tests', 'devcommands', 'demo', 'localrelay', 'conftest', 'support')


def modules(*packages, under=PACKAGE):
    for package in packages:
        for path in sorted((under / package).glob('*.py')):
            yield path, ast.parse(path.read_text())


def everything():
    """The package's modules and the developer tools at code/'s top."""
    yield from modules('.', *LAYERS)
    yield from modules('.', under=CODE)


def imported(tree):
    """The names a module imports, the package's own as their layer (``spycloud_relay.api.x``
    is ``api.x``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == 'spycloud_relay':
            names = [f'spycloud_relay.{alias.name}' for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        yield from (name.removeprefix('spycloud_relay.') for name in names)


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


def test_the_sync_stands_on_the_layers_below_and_nothing_imports_it():
    """sync/ uses spycloud/, ctim/ and state/, never the routes or the tiles; nothing but
    the command line (cli.py, sync_command.py) reaches for it."""
    for path, tree in modules('sync'):
        wrong = [n for n in imported(tree) if n.split('.')[0] in ('api', 'app', 'flask', 'tiles')]
        assert not wrong, f'{path.relative_to(CODE)} imports {wrong}'
    for path, tree in modules('.', 'api', 'spycloud', 'ctim', 'tiles', 'state'):
        wrong = [name for name in imported(tree) if name.split('.')[0] == 'sync']
        cli = path.name in ('cli.py', 'sync_command.py')  # the command line, on top
        assert not wrong or cli, f'{path.relative_to(CODE)} imports {wrong}'


def test_no_thread_local_carries_request_state():
    for path, tree in everything():
        text = ast.unparse(tree)
        assert 'threading.local' not in text and 'local()' not in text, path


def test_functions_are_at_most_40_lines():
    """Everywhere in the relay: its layers, the root modules (serving, settings, the CLI) and
    the developer tools beside them."""
    long = [
        f'{path.relative_to(CODE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})'
        for path, tree in everything()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 40
    ]
    assert not long


def test_modules_are_at_most_about_400_lines():
    """A module owns one idea: past about 400 lines it holds several."""
    large = [
        f'{path.relative_to(CODE)} ({lines})'
        for path, _ in everything()
        if (lines := len(path.read_text().splitlines())) > 400
    ]
    assert not large


def test_the_package_imports_no_developer_tool():
    """The image has the package and nothing else; only the command line reaches for the
    developer commands and the simulator, and copes when a checkout's code/ is not there."""
    wrong = [
        f'{path.relative_to(CODE)} imports {name}'
        for path, tree in modules('.', *LAYERS)
        for name in imported(tree)
        if name.split('.')[0] in DEVELOPER_TOOLS and path.name != 'cli.py'
    ]
    assert not wrong


def test_the_package_holds_only_the_relay():
    """Nothing at code/'s top but the package, the simulator, the tests and the tools."""
    top = {p.stem for p in CODE.iterdir() if not p.name.startswith(('.', '__'))}
    assert top == {'spycloud_relay', 'simulator', 'tests', 'devcommands', 'demo', 'localrelay'}


def requirement_names(specs):
    return sorted(re.match(r'[A-Za-z0-9_.-]+', spec).group().lower() for spec in specs)


def test_the_package_needs_what_the_pipfile_locks():
    """pyproject's dependencies (what installing the package brings) are the Pipfile's
    [packages] (what the lock pins and the image installs), name for name."""
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    pipfile = tomllib.loads((ROOT / 'Pipfile').read_text())
    assert requirement_names(project['dependencies']) == sorted(pipfile['packages'])
    assert pipfile['dev-packages']['spycloud-relay'] == {'path': '.', 'editable': True}


def test_the_relay_command_is_the_packages():
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    module, _, function = project['scripts']['relay'].partition(':')
    assert module == 'spycloud_relay.cli'
    tree = ast.parse((PACKAGE / 'cli.py').read_text())
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
