"""The suite on other calendar days: `make test-dates` (DATES='+100d -200d').

Each offset moves the wall clock of the test process and of every process it starts (gunicorn,
redis-server), through the libfaketime library the `libfaketime` package ships (Debian's
0.9.10 breaks timed condition waits). The monotonic clock stays real, so timeouts, deadlines
and sleeps behave as on any day; only "today" moves. Exits non-zero when a run fails.
"""

import os
import subprocess
import sys
from pathlib import Path

import libfaketime

CODE = Path(__file__).resolve().parent.parent


def faked(offset: str) -> dict[str, str]:
    """The environment that runs a process ``offset`` (e.g. ``+192d``) away from today."""
    _, preload = libfaketime.get_reload_information()
    return {
        **os.environ,
        **preload,
        'FAKETIME': offset,
        'FAKETIME_DONT_FAKE_MONOTONIC': '1',
    }


def main(offsets: list[str]) -> int:
    failed = []
    for offset in offsets:
        print(f'== the suite with the clock at {offset}', flush=True)
        run = subprocess.run(
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider'],
            cwd=CODE,
            env=faked(offset),
            check=False,
        )
        if run.returncode != 0:
            failed.append(offset)
    print('failed at: ' + ', '.join(failed) if failed else 'passed at every offset')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['+100d', '-200d']))
