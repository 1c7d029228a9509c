"""Session-wide real services: the vcsim vCenter and a real glance-api.

Nothing here imports nova: tests/functional must import it first itself.
"""

import os
import threading

import pytest

from tests.harness import glance as glance_harness
from tests.harness import vcsim as vcsim_harness


def _prepare(fn):
    try:
        fn()
    except Exception:
        pass  # the fixture that needs it tries again and reports why


def pytest_collection_finish(session):
    """On a fresh machine, build the vcsim launcher (Go) and the Glance
    venv (pip) side by side, while the first tests start.

    Native threads only: under eventlet a green builder holding the file
    lock would never run again while the main thread blocks on it.
    """
    native = os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING', '').lower()
    if native not in ('1', 'true', 'yes'):
        return
    if not any('functional' in item.nodeid or 'harness' in item.nodeid
               for item in session.items):
        return
    # Both builds lock their output, so the fixtures simply wait for them.
    for fn in (vcsim_harness.build_launcher,
               glance_harness.ensure_glance_venv):
        threading.Thread(target=_prepare, args=(fn,), daemon=True).start()


@pytest.fixture(scope='session')
def vcsim():
    with vcsim_harness.Vcsim(clusters=2, hosts_per_cluster=3, nfs=1) as sim:
        yield sim


@pytest.fixture(scope='session')
def glance():
    with glance_harness.Glance() as g:
        yield g
