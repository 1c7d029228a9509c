"""Rescue: boot the instance from a rescue image, its own disks attached.

The rescue disk comes from the datastore's image cache as a root disk
does (a delta of the cached image, or a copy), as
``[ds] <uuid>/<uuid>-rescue.vmdk`` on the bus of the instance's root
disk; the boot order puts it first and the original root second, so the
rescue system finds the original disk to repair. Unrescue detaches and
deletes the rescue disk and boots the original again.
"""

from nova import exception as nova_exception
from oslo_log import log as logging

from vcdriver import datastore_layout as layout
from vcdriver import devices
from vcdriver import instance_disks
from vcdriver import power
from vcdriver import vm
from vcdriver.images import disk
from vcdriver.images import glance
from vcdriver.images import pipeline

LOG = logging.getLogger(__name__)


def _folder(session, vm_ref):
    ds_name, folder = vm.files_location(session, vm_ref)
    return layout.path(ds_name, folder)


def rescue(session, context, cluster, vm_ref, instance, image_id):
    image = glance.get(context, image_id)
    plan = disk.check_acceptable(image)
    if plan.iso:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id,
            reason='an ISO cannot be a rescue image here: rescue boots a '
                   'disk image')
    folder = _folder(session, vm_ref)
    power.power_off(session, vm_ref)
    found = devices.Devices.read(session, vm_ref)
    if any(found.is_rescue_disk(d) for d in found.disks):
        raise nova_exception.InstanceNotRescuable(
            instance_id=instance.uuid,
            reason='a rescue disk is attached already')
    # The original root boots second; the rescue disk goes on its bus.
    root = found.root_disk(instance.uuid)
    root_bus = found.instance_bus(instance.uuid)
    entry = pipeline.cached(session, context, cluster, image, plan,
                            folder.datastore)
    path = layout.rescue_disk(folder, instance.uuid)
    rescue_disk = instance_disks.root_disk(session, cluster, entry, plan,
                                           path, 0)
    vm.attach_disks(session, vm_ref, root_bus, [rescue_disk])
    keys = [d.key for d in devices.Devices.read(session, vm_ref).disks
            if d.backing.fileName == str(path)]
    if root is not None:
        keys.append(root.key)
    vm.set_boot_disks(session, vm_ref, keys)
    power.power_on(session, vm_ref)
    LOG.info('Rescued from image %s (%s)', image_id, path,
             instance=instance)


def unrescue(session, vm_ref, instance):
    power.power_off(session, vm_ref)
    found = devices.Devices.read(session, vm_ref)
    for device in found.disks:
        if found.is_rescue_disk(device):
            vm.detach_disk(session, vm_ref, device, destroy_file=True)
    vm.set_boot_disks(session, vm_ref, [])
    power.power_on(session, vm_ref)
    LOG.info('Unrescued', instance=instance)
