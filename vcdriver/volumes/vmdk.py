"""Cinder's ``vmdk`` connection type: volumes as shadow-VM disks.

Cinder's VMDK driver keeps each volume as a "shadow" VM of its own, named
after the volume, with the volume's id as its instanceUuid and one disk:
the volume. Nova hands us ``connection_info['data']['volume']``, the
shadow VM's moref. Attaching adds that disk file to the instance's VM
(the shadow keeps it too, so Cinder still finds its volume); detaching
takes it off again without touching the file, and gives the file back to
the shadow should it have moved with the instance.

As in-tree, the instance's extraConfig ``volume-<volume id>`` holds the
disk's uuid, so a volume is found on the instance even after Storage DRS
moved its file, and instances attached by the in-tree driver detach here.

Swapping (Cinder's volume migration) copies the old volume's disk into
the new volume's file and attaches that at the old one's slot; extending
grows the attached disk through the instance's reconfigure (see
``swap`` and ``extend``).
"""

from nova import exception as nova_exception
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import datastore_layout as layout
from vcdriver import devices as devices_mod
from vcdriver import exception
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver.volumes.devices import check_hotplug
from vcdriver.volumes.devices import connection_data
from vcdriver.volumes.devices import instance_props
from vcdriver.volumes.devices import VOLUME_KEY
from vcdriver.vsphere import files
from vcdriver.vsphere import props
from vcdriver.vsphere import search_index
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)


def _shadow_disk(session, data):
    """(shadow VM, its disk device) of a volume.

    By moref first, as Cinder gave it; by the volume id as instanceUuid
    when that moref is gone (the shadow VM was re-registered), as in-tree.
    """
    volume_id = data['volume_id']
    moref = data.get('volume')
    found = None
    if moref:
        found = _first_disk(session, props.moref(
            vim.VirtualMachine, moref, session.content.searchIndex))
    if found is None:
        shadow = search_index.find_vm_by_instance_uuid(session, volume_id)
        found = shadow and _first_disk(session, shadow)
    if not found:
        raise exception.VolumeBackingNotFound(volume_id=volume_id,
                                              moref=moref or '(none)')
    return found


def _first_disk(session, shadow):
    try:
        disks = devices_mod.Devices.read(session, shadow).disks
    except vmodl.fault.ManagedObjectNotFound:
        return None
    return (shadow, min(disks, key=lambda d: d.key)) if disks else None

def _attached(devices, disk_uuid, shadow_disk):
    """The instance's device of a volume: by the disk uuid recorded at
    attach, else by the shadow disk's file."""
    disks = devices.disks
    if disk_uuid:
        for d in disks:
            if getattr(d.backing, 'uuid', None) == disk_uuid:
                return d
    if shadow_disk is not None:
        for d in disks:
            if d.backing.fileName == shadow_disk.backing.fileName:
                return d
    return None


class _OnInstance:
    """A vmdk volume as attached to an instance: its shadow VM and disk
    (None when Cinder's side is gone), the instance's devices and power
    state, and the volume's device among them."""

    def __init__(self, session, vm_ref, data):
        self.volume_id = data['volume_id']
        try:
            self.shadow, self.shadow_disk = _shadow_disk(session, data)
        except exception.VolumeBackingNotFound:
            self.shadow = self.shadow_disk = None
        self.devices, self.power, disk_uuid = instance_props(
            session, vm_ref, self.volume_id)
        self.device = _attached(self.devices, disk_uuid, self.shadow_disk)
        if self.device is None:
            raise nova_exception.DiskNotFound(
                location='volume %s on the instance' % self.volume_id)

    def check_hotplug(self, action):
        check_hotplug(self.devices.bus(self.device), self.power,
                       self.volume_id, action)


def attach(session, vm_ref, connection_info, instance):
    """Add the volume's disk to the instance on a free slot of its root
    disk's bus, and record the disk's uuid, in one reconfigure."""
    data = connection_data(connection_info)
    volume_id = data['volume_id']
    _shadow, shadow_disk = _shadow_disk(session, data)
    devices, power, disk_uuid = instance_props(session, vm_ref, volume_id)
    if _attached(devices, disk_uuid, shadow_disk) is not None:
        LOG.info('Volume %s is attached already', volume_id,
                 instance=instance)
        return
    bus = devices.instance_bus(instance.uuid)
    check_hotplug(bus, power, volume_id, 'attached')
    controller_key, unit = devices.take_free_slot(bus)
    spec = vim.vm.ConfigSpec(
        deviceChange=[vm_spec.volume_disk(
            -300, controller_key, unit, shadow_disk.backing.fileName,
            shadow_disk.capacityInKB)],
        extraConfig=vm_spec.extra_config(
            {VOLUME_KEY % volume_id: shadow_disk.backing.uuid or ''}))
    virtual_machine.reconfigure(session, vm_ref, spec)
    LOG.info('Attached volume %s (%s) on %s unit %s', volume_id,
             shadow_disk.backing.fileName, bus, unit, instance=instance)


def detach(session, datacenter, vm_ref, connection_info, instance):
    """Take the volume's disk off the instance, keeping the file; then,
    should the file have moved with the instance, give it back to the
    shadow VM."""
    # Cinder's side may be gone: the instance is still freed of the disk.
    attached = _OnInstance(session, vm_ref, connection_data(connection_info))
    attached.check_hotplug('detached')
    volume_id, device = attached.volume_id, attached.device
    shadow, shadow_disk = attached.shadow, attached.shadow_disk
    spec = vim.vm.ConfigSpec(
        # Without fileOperation: 'destroy' would delete Cinder's file.
        deviceChange=[vm_spec.remove(device)],
        extraConfig=vm_spec.extra_config({VOLUME_KEY % volume_id: ''}))
    virtual_machine.reconfigure(session, vm_ref, spec)
    LOG.info('Detached volume %s (%s)', volume_id, device.backing.fileName,
             instance=instance)
    if shadow is not None and (
            device.backing.fileName != shadow_disk.backing.fileName):
        _return_to_shadow(session, datacenter, shadow, shadow_disk,
                          device.backing.fileName, instance)


def _return_to_shadow(session, datacenter, shadow, shadow_disk, current,
                      instance):
    """Storage vMotion of an instance (Storage DRS, a migration) moves its
    volumes' files into the instance's folder, which goes when the
    instance does, and leaves the shadow VM naming a file that is gone.
    Move the file into the shadow's folder on the datastore it is on now
    (nothing holds it once detached) and point the shadow's disk at it,
    so Cinder finds its volume again. Returns the file's path now.

    The in-tree driver relocates the whole shadow VM instead; moving the
    one file does not depend on vCenter moving files on relocate.
    """
    current = layout.parse(current)
    home = layout.parse(shadow_disk.backing.fileName)
    target = layout.path(current.datastore, home.dirname, current.basename)
    LOG.info('The disk of volume backing %s moved to %s; moving it to %s '
             'for the volume to keep it', props.moid(shadow), current, target,
             instance=instance)
    if str(target) != str(current):
        files.make_directory(session, datacenter, target.parent)
        files.move_virtual_disk(session, datacenter, current, target)
    add = vm_spec.volume_disk(
        -301, shadow_disk.controllerKey, shadow_disk.unitNumber, target,
        shadow_disk.capacityInKB,
        disk_mode=shadow_disk.backing.diskMode or 'persistent')
    add.device.backing.uuid = shadow_disk.backing.uuid
    virtual_machine.reconfigure(session, shadow, vim.vm.ConfigSpec(
        deviceChange=[vm_spec.remove(shadow_disk), add]))
    return str(target)


# --- swap and extend ---------------------------------------------------------


def _disk_type(backing):
    """VirtualDiskManager's disk type of a disk backing."""
    if getattr(backing, 'thinProvisioned', False):
        return 'thin'
    if getattr(backing, 'eagerlyScrub', False):
        return 'eagerZeroedThick'
    return 'preallocated'


def swap(session, datacenter, vm_ref, old, new, instance, resize_to):
    """The old volume's data onto the new volume's disk, that disk at the
    old one's slot, and the old disk back with its shadow, untouched.

    vSphere copies no disk a running VM holds, nor over a disk that
    exists (CopyVirtualDisk's force is ignored). So:

    1. the old disk comes off the instance (the file stays);
    2. it is copied next to the new volume's disk (``<new>-swap.vmdk``,
       the new disk's type), grown to ``resize_to`` GB if asked;
    3. the old disk, should it have moved with the instance (Storage
       vMotion), goes back to its shadow's folder, as on detach;
    4. the new volume's own file steps aside (``<new>-swapped.vmdk``), the
       copy takes its name (so Cinder's shadow VM holds the data), and
       the file set aside is deleted;
    5. the new disk goes on the instance at the old disk's controller and
       unit, keeping the new shadow's disk uuid, and extraConfig records
       ``volume-<new id>`` and drops ``volume-<old id>``, in one
       reconfigure.

    Should any step fail, the old disk goes back on the instance where it
    was (from wherever its file is then), the copy is deleted, and the
    error is raised: the instance keeps its data and Nova rolls the swap
    back in Cinder. Once step 4 has put the copy in place, the new
    volume's earlier content (Cinder's empty new volume) is not restored.
    """
    old_id, new_id = old['volume_id'], new['volume_id']
    _new_shadow, new_disk = _shadow_disk(session, new)
    attached = _OnInstance(session, vm_ref, old)
    attached.check_hotplug('swapped')
    devices, device = attached.devices, attached.device
    old_shadow, old_shadow_disk = attached.shadow, attached.shadow_disk
    new_path = new_disk.backing.fileName
    if new_path == device.backing.fileName:
        raise nova_exception.InvalidVolume(
            reason='volume %s has the disk of volume %s (%s)' % (
                new_id, old_id, new_path))
    staging, aside = layout.volume_swap_paths(new_path)
    capacity_kb = max(device.capacityInKB, new_disk.capacityInKB,
                      (resize_to or 0) * units.Mi)
    mode = device.backing.diskMode or 'independent_persistent'
    LOG.info('Swapping volume %s (%s) for %s (%s) at unit %s%s', old_id,
             device.backing.fileName, new_id, new_path, device.unitNumber,
             ', growing it to %s GB' % resize_to if resize_to else '',
             instance=instance)

    vm.detach_disk(session, vm_ref, device)
    where = {'old': device.backing.fileName, 'staging': False}
    step = 'copying %s to %s' % (where['old'], staging)
    try:
        files.delete_virtual_disk(session, datacenter, staging)  # leftover
        where['staging'] = True
        files.copy_virtual_disk(session, datacenter, where['old'], staging,
                                vm_spec.vmdk_adapter_type(
                                    devices.adapter_type(device)),
                                _disk_type(new_disk.backing))
        if capacity_kb > device.capacityInKB:
            step = 'growing %s to %s KB' % (staging, capacity_kb)
            files.extend_virtual_disk(session, datacenter, staging,
                                      capacity_kb * units.Ki)
        if old_shadow is not None and (
                where['old'] != old_shadow_disk.backing.fileName):
            step = 'giving %s back to %s' % (where['old'],
                                             props.moid(old_shadow))
            where['old'] = _return_to_shadow(
                session, datacenter, old_shadow, old_shadow_disk,
                where['old'], instance)
        step = 'putting the copy in place of %s' % new_path
        files.move_virtual_disk(session, datacenter, new_path, aside)
        try:
            files.move_virtual_disk(session, datacenter, staging, new_path)
        except Exception:
            with excutils.save_and_reraise_exception():
                files.move_virtual_disk(session, datacenter, aside, new_path)
        where['staging'] = False
        _delete_quietly(session, datacenter, aside, instance)
        step = 'attaching %s' % new_path
        add = vm_spec.volume_disk(-300, device.controllerKey,
                                  device.unitNumber, new_path, capacity_kb,
                                  disk_mode=mode)
        add.device.backing.uuid = new_disk.backing.uuid
        virtual_machine.reconfigure(session, vm_ref, vim.vm.ConfigSpec(
            deviceChange=[add], extraConfig=vm_spec.extra_config({
                VOLUME_KEY % new_id: new_disk.backing.uuid or '',
                VOLUME_KEY % old_id: ''})))
    except Exception as e:
        LOG.error('Swapping volume %s for %s failed %s: %s; putting %s back '
                  'on the instance', old_id, new_id, step, _fault_text(e),
                  where['old'], instance=instance)
        back = _swap_rollback(session, datacenter, vm_ref, device, where,
                              staging, mode, instance)
        raise exception.VCenterError(reason=(
            'volume %s is %s: swapping it for %s failed %s: %s' % (
                old_id, 'attached again with its data' if back else
                'off the server, its file at %s' % where['old'], new_id,
                step, _fault_text(e)))) from e
    LOG.info('Swapped volume %s for %s (%s)', old_id, new_id, new_path,
             instance=instance)


def _fault_text(e):
    """A vSphere fault's message, without pyVmomi's whole dump."""
    msg = getattr(e, 'msg', None)
    return '%s: %s' % (type(e).__name__, msg) if msg else str(e)


def _swap_rollback(session, datacenter, vm_ref, device, where, staging, mode,
                   instance):
    """The old disk back on the instance, at its slot (True if it is);
    the copy gone."""
    add = vm_spec.volume_disk(-300, device.controllerKey, device.unitNumber,
                              where['old'], device.capacityInKB,
                              disk_mode=mode)
    add.device.backing.uuid = device.backing.uuid
    try:
        virtual_machine.reconfigure(session, vm_ref, vim.vm.ConfigSpec(
            deviceChange=[add]))
        back = True
    except Exception:
        LOG.exception('Could not put %s back on the instance; attach it '
                      'again by hand', where['old'], instance=instance)
        back = False
    if where['staging']:
        _delete_quietly(session, datacenter, staging, instance)
    return back


def _delete_quietly(session, datacenter, path, instance):
    try:
        files.delete_virtual_disk(session, datacenter, path)
    except Exception as e:
        LOG.warning('Could not delete %s (delete it by hand): %s', path, e,
                    instance=instance)


def extend(session, vm_ref, connection_info, instance,
                 requested_size):
    """An edit of the instance's disk device with the new capacity, which
    is how vSphere grows a disk, attached and running (no IDE
    hot-extend)."""
    attached = _OnInstance(session, vm_ref, connection_data(connection_info))
    volume_id, device = attached.volume_id, attached.device
    new_kb = -(-requested_size // units.Ki)
    if device.capacityInKB >= new_kb:
        LOG.info('Volume %s has %s KB already (%s KB asked)', volume_id,
                 device.capacityInKB, new_kb, instance=instance)
        return
    attached.check_hotplug('extended')
    old_kb = device.capacityInKB
    device.capacityInKB = new_kb
    device.capacityInBytes = new_kb * units.Ki
    virtual_machine.reconfigure(session, vm_ref, vim.vm.ConfigSpec(
        deviceChange=[vim.vm.device.VirtualDeviceSpec(
            operation=vim.vm.device.VirtualDeviceSpec.Operation.edit,
            device=device)]))
    LOG.info('Extended volume %s (%s) from %s KB to %s KB', volume_id,
             device.backing.fileName, old_kb, new_kb, instance=instance)
