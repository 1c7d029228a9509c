"""A server's life through the openstack CLI, as a user lives it: boot,
stop, start, reboot, resize and confirm, cold migration to the other
compute service, live migration back, snapshot and a boot from the
snapshot, delete. After each step vCenter must show what Nova says."""

import types

import pytest

from tests.stack import images
from tests.stack import vcenter

# Nova's power_state codes (nova/compute/power_state.py).
POWER = {1: 'poweredOn', 4: 'poweredOff'}


@pytest.fixture(scope='module')
def image(stack, tmp_path_factory):
    path = images.qcow2(tmp_path_factory.mktemp('img') / 'life.qcow2',
                        pattern=0x6b)
    image_id = stack.create_image(path, 'qcow2', 'stack-life')
    yield types.SimpleNamespace(id=image_id, path=path)
    stack.openstack('image', 'delete', image_id, check=False)


@pytest.fixture(scope='module')
def bigger(stack):
    return stack.flavor('stack-small', ram=1024, vcpus=2, disk=2)


class Life:
    """One server and the checks of each step against vCenter."""

    def __init__(self, stack, si, flavors):
        self.stack, self.si = stack, si
        self.flavors = flavors          # name -> flavor, as the CLI shows
        self.nodes = vcenter.clusters_by_node(stack, si)
        self.hosts = stack.nodes()
        self.id = None

    def show(self):
        return self.stack.openstack('server', 'show', self.id)

    def action(self, *args):
        self.stack.openstack('server', *args, parse=False)

    def wait(self, status, task_state=None):
        conn = self.stack.stack.new_connection()
        server = conn.compute.wait_for_server(
            conn.compute.get_server(self.id), status=status,
            failures=['ERROR'], interval=1, wait=600)
        assert server.task_state == task_state, server.task_state
        return self.check()

    def check(self):
        """Nova's view of the server against its VM in vCenter."""
        server = self.show()
        vm = vcenter.vm_of(self.si, self.id)
        assert vm is not None, 'no VM for %s' % self.id
        node = server['OS-EXT-SRV-ATTR:hypervisor_hostname']
        assert self.hosts[node] == server['OS-EXT-SRV-ATTR:host']
        cluster = self.nodes[node]
        assert vm.resourcePool.owner == cluster, (
            'VM in %s, Nova says %s' % (vm.resourcePool.owner.name, node))
        assert vm.runtime.powerState == POWER[
            server['OS-EXT-STS:power_state']], vm.runtime.powerState
        flavor = self.flavors[server['flavor']['original_name']]
        assert vm.config.hardware.numCPU == flavor['vcpus']
        assert vm.config.hardware.memoryMB == flavor['ram']
        # Its files on a datastore its cluster's hosts mount.
        assert vcenter.datastore_of(vm) in [d.name for d in
                                           cluster.datastore]
        return server


def test_a_servers_life_through_the_cli(stack, image, flavor, bigger,
                                        tmp_path):
    si = vcenter.connect(stack)
    vms_before = vcenter.vm_names(si)
    life = Life(stack, si, {flavor['name']: flavor, bigger['name']: bigger})
    node1 = next(n for n, h in life.hosts.items() if h == 'compute1')
    made = []
    try:
        server = stack.boot(image.id, flavor, 'stack-life', node1,
                            'compute1')
        life.id = server['id']
        made.append(life.id)
        life.check()

        life.action('stop', life.id)
        life.wait('SHUTOFF')
        life.action('start', life.id)
        life.wait('ACTIVE')
        vm = vcenter.vm_of(si, life.id)
        powered_on = vcenter.powered_on_events(si, vm)
        life.action('reboot', '--hard', '--wait', life.id)
        life.check()
        assert vcenter.powered_on_events(si, vm) == powered_on + 1, \
            'the VM was not powered on again'

        life.action('resize', '--flavor', bigger['id'], '--wait', life.id)
        life.wait('VERIFY_RESIZE')
        life.action('resize', 'confirm', life.id)
        shown = life.wait('ACTIVE')
        assert shown['flavor']['original_name'] == bigger['name']

        # The resize may have moved it (Nova picks the host): cold to the
        # other compute service, live back.
        here = shown['OS-EXT-SRV-ATTR:host']
        there = {'compute1': 'compute2', 'compute2': 'compute1'}[here]
        life.action('migrate', '--host', there, '--wait', life.id)
        shown = life.wait('VERIFY_RESIZE')
        assert shown['OS-EXT-SRV-ATTR:host'] == there
        life.action('resize', 'confirm', life.id)
        life.wait('ACTIVE')

        life.action('migrate', '--live-migration', '--host', here,
                    '--wait', life.id)
        shown = life.wait('ACTIVE')
        assert shown['OS-EXT-SRV-ATTR:host'] == here

        # Last, after the disk was grown (a linked clone consolidated into
        # a standalone copy) and moved twice: a snapshot still holds the
        # image, and boots (on the bigger flavor: its disk is the grown
        # one, too big for the first flavor's).
        _snapshot_and_boot(stack, life, image, bigger, tmp_path, made)
    finally:
        stack.delete_servers(made)
    assert vcenter.vm_names(si) == vms_before, 'VMs left behind'
    for host in ('compute1', 'compute2'):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)


def _snapshot_and_boot(stack, life, image, flavor, tmp_path, made):
    snap = stack.openstack('server', 'image', 'create', '--name',
                           'stack-life-snap', '--wait', life.id)
    try:
        saved = tmp_path / 'snap.vmdk'
        stack.openstack('image', 'save', '--file', str(saved), snap['id'],
                        parse=False)
        # Its disk holds what the image held, zeros after it (qemu-img
        # reads both; the snapshot's disk is the grown one).
        images.compare(image.path, 'qcow2', saved, 'vmdk')
        again = stack.boot(snap['id'], flavor, 'stack-life-from-snap')
        made.append(again['id'])
        assert again['status'] == 'ACTIVE', again
        stack.delete_servers([made.pop()])
    finally:
        stack.openstack('image', 'delete', snap['id'], check=False)
