"""Cut the definitions the relay answers with out of Cisco's IROH Enrich swagger.

Run from the repository root: ``python code/tests/contracts/extract.py``. The
tests use the extract so they run anywhere; test_contract_file checks it still
matches ``../shared/contracts/iroh-enrich-swagger.json`` where that exists.
"""

import json
import sys
from pathlib import Path

ROOTS = (
    'ModuleObserveBundle',
    'Sighting',
    'Indicator',
    'Relationship',
    'ModuleErrorMessage',
    'ModuleHealthStatus',
    'Ref',
)
HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3] / 'shared' / 'contracts' / 'iroh-enrich-swagger.json'
EXTRACT = HERE / 'iroh-enrich-definitions.json'


def closure(definitions, roots=ROOTS):
    """The named definitions and every definition they reach through $ref."""
    wanted, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = definitions[name]
        todo.extend(refs(definitions[name]))
    return {name: wanted[name] for name in sorted(wanted)}


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == '$ref' and isinstance(value, str):
                yield value.rsplit('/', 1)[-1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def main(source=SHARED):
    swagger = json.loads(Path(source).read_text())
    extract = {
        'source': 'iroh-enrich-swagger.json',
        'swagger_info': swagger.get('info', {}),
        'definitions': closure(swagger['definitions']),
    }
    EXTRACT.write_text(json.dumps(extract, indent=1, sort_keys=True) + '\n')
    print(f'{len(extract["definitions"])} definitions written to {EXTRACT}')


if __name__ == '__main__':
    main(*sys.argv[1:])
