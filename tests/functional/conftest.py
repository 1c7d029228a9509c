import os

import pytest
from pyVmomi import vim
from pyVmomi import vmodl

from tests.functional import nova_db_locks
from tests.harness import vcsim as vcsim_harness


def instance_vms(sim):
    """VMs carrying Nova's instance marker, straight from vCenter."""
    si = vcsim_harness.connect(sim)
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        found = []
        for v in view.view:
            try:
                if any(o.key == 'nvp.vm-uuid'
                       for o in (v.config.extraConfig or ())):
                    found.append(v)
            except vmodl.fault.ManagedObjectNotFound:
                pass  # deleted while we looked
        return found
    finally:
        view.DestroyView()


@pytest.fixture(autouse=True)
def real_services(request, vcsim, glance):
    """Hands vcsim and Glance to the test; fails it if it leaks a VM."""
    if request.instance is not None:
        request.instance.vcsim = vcsim
        request.instance.glance = glance
    yield
    leaked = instance_vms(vcsim)
    for v in leaked:  # keep later tests' computes startable
        if v.runtime.powerState == 'poweredOn':
            v.PowerOffVM_Task()
        v.Destroy_Task()
    assert not leaked, 'test left instance VMs in vCenter: %s' % [
        v.name for v in leaked]


@pytest.fixture(autouse=True, scope='session')
def native_db_locks():
    """Native threads: break the deadlock between Nova's DB fixtures'
    locks; name the holder of a DB writer lock left held."""
    if os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING') == 'true':
        nova_db_locks.install()
