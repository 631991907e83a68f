"""Print the runtime packages of Pipfile.lock as a pip requirements file with hashes.

Used by the Dockerfile (standard library only, so the image needs no pipenv): the same
output as ``pipenv requirements --hash`` without its ``-i <index>`` line, for
``pip install --require-hashes -r``. By default the lock's ``default`` section (no dev
packages); ``--build`` prints the package's build backend instead (setuptools, from the
``develop`` section), with which the image builds the relay's wheel.

    python3 lock_to_requirements.py Pipfile.lock > requirements.txt
    python3 lock_to_requirements.py --build Pipfile.lock > build-requirements.txt
"""

import json
import sys

BUILD_BACKEND = ('setuptools',)


def requirements(lock, build=False):
    if build:
        entries = {name: lock['develop'][name] for name in BUILD_BACKEND}
    else:
        entries = lock.get('default', {})
    lines = []
    for name, entry in sorted(entries.items()):
        version, hashes = entry.get('version', ''), entry.get('hashes', [])
        if not version.startswith('==') or not hashes:
            raise SystemExit(
                f'{name}: only pinned packages with hashes can be installed '
                f'from the lock (got {entry!r})'
            )
        extras = f'[{",".join(entry["extras"])}]' if entry.get('extras') else ''
        markers = f'; {entry["markers"]}' if entry.get('markers') else ''
        lines.append(f'{name}{extras}{version}{markers} \\')
        lines.extend(f'    --hash={digest} \\' for digest in hashes[:-1])
        lines.append(f'    --hash={hashes[-1]}')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    build = '--build' in sys.argv[1:]
    paths = [arg for arg in sys.argv[1:] if arg != '--build']
    with open(paths[0] if paths else 'Pipfile.lock', encoding='utf-8') as fh:
        sys.stdout.write(requirements(json.load(fh), build=build))
