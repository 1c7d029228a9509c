import os

import pytest

from tests.functional import nova_db_locks
from tests.functional import vcsim_view


@pytest.fixture(autouse=True)
def real_services(request, vcsim, glance):
    """Hands vcsim and Glance to the test; fails it if it leaks a VM."""
    if request.instance is not None:
        request.instance.vcsim = vcsim
        request.instance.glance = glance
    yield
    leaked = vcsim_view.remove_instance_vms(vcsim)
    assert not leaked, 'test left instance VMs in vCenter: %s' % leaked


@pytest.fixture(autouse=True, scope='session')
def native_db_locks():
    """Native threads: break the deadlock between Nova's DB fixtures'
    locks; name the holder of a DB writer lock left held."""
    if os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING') == 'true':
        nova_db_locks.install()
