"""Session-wide real services: the vcsim vCenter and a real glance-api.

Nothing here imports nova: tests/functional must import it first itself.
"""

import pytest

from tests.harness import glance as glance_harness
from tests.harness import vcsim as vcsim_harness


@pytest.fixture(scope='session')
def vcsim():
    with vcsim_harness.Vcsim(clusters=2, hosts_per_cluster=3, nfs=1) as sim:
        yield sim


@pytest.fixture(scope='session')
def glance():
    with glance_harness.Glance() as g:
        yield g
