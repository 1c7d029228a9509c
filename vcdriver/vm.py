"""VM operations on instances: find, create, disks, destroy.

The vSphere calls themselves are in ``vsphere/virtual_machine.py``,
``vsphere/folder.py`` and ``vsphere/search_index.py``; this module
decides what to ask of them for an instance.
"""

import dataclasses

from nova.compute import power_state
from oslo_log import log as logging
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import datastore_layout as layout
from vcdriver import devices
from vcdriver import power
from vcdriver import vm_spec
from vcdriver.vsphere import folder
from vcdriver.vsphere import props
from vcdriver.vsphere import search_index
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)

POWER_STATES = {
    'poweredOn': power_state.RUNNING,
    'poweredOff': power_state.SHUTDOWN,
    'suspended': power_state.SUSPENDED,
}

# The property whose value marks a VM as Nova's instance (vm_spec writes
# the key at spawn).
INSTANCE_MARKER_PROP = 'config.extraConfig["%s"]' % vm_spec.INSTANCE_UUID_KEY
INSTANCE_PROPS = ['name', 'config.instanceUuid', 'runtime.powerState',
                  INSTANCE_MARKER_PROP]


def find(session, instance_uuid):
    """The VM of an instance by its instanceUuid, or None.

    Looked up on every call rather than cached: a VM re-registered in
    vCenter gets a new moref, and a stale one is a known source of errors.
    """
    return search_index.find_vm_by_instance_uuid(session, instance_uuid)


def instances(session, clusters):
    """{instance uuid: (vm, cluster)} for Nova's VMs in the clusters.

    A VM counts as an instance when it carries the ``nvp.vm-uuid`` key.
    Two reads whatever the number of clusters, hosts and VMs.
    """
    cluster_props = props.properties(session, [c.ref for c in clusters],
                                     vim.ClusterComputeResource, ['host'])
    host_cluster = {h: c for c in clusters
                    for h in cluster_props.get(c.ref, {}).get('host', [])}
    _hosts, vm_props, host_vms = props.properties_and_children(
        session, host_cluster, vim.HostSystem, [], 'vm',
        vim.VirtualMachine, INSTANCE_PROPS)
    vm_cluster = {vm: host_cluster[h] for h, vms in host_vms.items()
                  for vm in vms}
    found = {}
    for vm, p in vm_props.items():
        marker = p.get(INSTANCE_MARKER_PROP)
        uuid = getattr(marker, 'value', marker)
        if uuid:
            found[uuid] = (vm, vm_cluster[vm])
    return found


def state_and_cluster(session, vm):
    """(Nova power state, the cluster the VM's host is in) in two reads."""
    p = props.properties(session, [vm], vim.VirtualMachine,
                         ['runtime.powerState', 'runtime.host']).get(vm, {})
    state = POWER_STATES.get(p.get('runtime.powerState'),
                             power_state.NOSTATE)
    host = p.get('runtime.host')
    if host is None:
        return state, None
    parent = props.properties(session, [host], vim.HostSystem,
                              ['parent']).get(host, {}).get('parent')
    return state, parent


def power_state_of(session, vm):
    p = props.properties(session, [vm], vim.VirtualMachine,
                         ['runtime.powerState'])
    return POWER_STATES.get(p.get(vm, {}).get('runtime.powerState'),
                            power_state.NOSTATE)


def create(session, cluster, config_spec):
    return folder.create_vm(session, cluster.vm_folder,
                            cluster.resource_pool, config_spec)


@dataclasses.dataclass
class Disk:
    """A disk of an instance: an existing file, or one vCenter creates
    (empty, or a delta of ``parent`` for a linked clone)."""
    path: object
    size_bytes: int
    create: bool = False
    thin: bool = True
    parent: object = None


def attach_disks(session, vm, bus, disks, iso_path=None, profile_id=None):
    """Attach the instance's disks, root first, and an ISO as a CD-ROM,
    in one reconfigure; ``profile_id``, the storage policy of the disks.

    Disks go on after CreateVM_Task, not inside it: the VM folder must
    exist first for the disks to live in it.
    """
    found = devices.Devices.read(session, vm)
    changes = []
    for key, d in enumerate(disks, start=-200):
        controller_key, unit = found.take_free_slot(bus)
        changes.append(vm_spec.disk(key, controller_key, unit, d.path,
                                    d.size_bytes, create=d.create,
                                    thin=d.thin, parent=d.parent,
                                    profile_id=profile_id))
    if iso_path is not None:
        # The CD-ROM goes on IDE, which every VM has.
        controller_key, unit = found.take_free_slot('ide')
        changes.append(vm_spec.cdrom(-100, controller_key, unit, iso_path))
    virtual_machine.reconfigure(session, vm,
                                vim.vm.ConfigSpec(deviceChange=changes))


def attach_cdrom(session, vm, iso_path):
    """Add a CD-ROM with an ISO from a datastore on a free IDE slot."""
    controller_key, unit = devices.Devices.read(
        session, vm).take_free_slot('ide')
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        deviceChange=[vm_spec.cdrom(-100, controller_key, unit, iso_path)]))


def tune(session, vm, specs, spec=None, profile_id=None):
    """Give the VM's disks, NICs and video card what ``specs``
    (extra_specs.ExtraSpecs) asks, and the instance's disks the storage
    policy ``profile_id`` if given, in one reconfigure with ``spec`` (a
    ConfigSpec of other changes) when given."""
    spec = spec or vim.vm.ConfigSpec()
    spec.deviceChange = list(spec.deviceChange) + vm_spec.tune_devices(
        devices.Devices.read(session, vm), specs, profile_id)
    virtual_machine.reconfigure(session, vm, spec)


def set_boot_disks(session, vm, disk_keys):
    """Boot from these disks, in order ([]: the default order)."""
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        bootOptions=vm_spec.boot_order(disk_keys)))


def detach_disk(session, vm, device, destroy_file=False):
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        deviceChange=[vm_spec.remove(device, destroy_file)]))


def files_location(session, vm):
    """(datastore name, folder) of the VM's files, from its .vmx path."""
    p = props.properties(session, [vm], vim.VirtualMachine,
                         ['config.files.vmPathName'])
    path = layout.parse(p.get(vm, {}).get('config.files.vmPathName'))
    if path is None:
        return None, None
    return path.datastore, path.dirname


def hw_version(session, vm):
    """The VM's hardware version (``vmx-<n>``)."""
    return props.properties(session, [vm], vim.VirtualMachine,
                            ['config.version']).get(vm, {}).get(
                                'config.version')


def unregister(session, vm):
    """Take a VM out of the inventory, leaving its files."""
    virtual_machine.unregister(session, vm)


def destroy(session, vm):
    """Power off and delete a VM with its files; gone already is fine."""
    try:
        state = power_state_of(session, vm)
        if state in (power_state.RUNNING, power_state.SUSPENDED):
            power.power_off(session, vm)
        virtual_machine.destroy(session, vm)
    except vmodl.fault.ManagedObjectNotFound:
        LOG.info('VM %s vanished before it was destroyed', props.moid(vm))
