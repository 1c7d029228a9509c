"""A VM's virtual hardware, read once: its disks, the controllers they
hang on, the instance's root disk and the free slots.

``Devices.read`` takes ``config.hardware.device`` (and the extraConfig
that names the volumes' disks) in one PropertyCollector read;
``Devices(device_list)`` wraps devices a caller read already. Everything
the driver asks of a VM's devices is answered here, once: which bus and
which ``vmware_adaptertype`` a controller is, which disk is the root,
where the next disk goes.
"""


from pyVmomi import vim

from vcdriver import datastore_layout as layout
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.vsphere import props

DISK = vim.vm.device.VirtualDisk
RDM = DISK.RawDiskMappingVer1BackingInfo
# extraConfig key holding the disk uuid (a LUN's uuid for iSCSI) of the
# volume attached as that disk, as the in-tree driver records it too.
VOLUME_KEY = 'volume-%s'
# The rescue disk rescue adds beside the root: ``<uuid>-rescue.vmdk``.

# Per bus, its controller type and the unitNumbers a device can take on
# one controller: SCSI unit 7 is the controller's own
# (scsiCtlrUnitNumber); IDE has two controllers of two units, SATA 30
# units per controller. In the order an instance without disks takes
# its bus: the controller spawn added (SCSI or SATA), else IDE, which
# every VM has.
BUSES = {
    'scsi': (vim.vm.device.VirtualSCSIController,
             tuple(u for u in range(16) if u != 7)),
    'sata': (vim.vm.device.VirtualAHCIController, tuple(range(30))),
    'ide': (vim.vm.device.VirtualIDEController, (0, 1)),
}


class Devices:
    """The devices of one VM (``config.hardware.device``), as read once.

    ``extra_config`` (the VM's ``config.extraConfig``), when given, names
    the disks that are volumes by their recorded uuid; without it a
    volume is known by its backing alone (see ``is_volume``).
    """

    PROPS = ('config.hardware.device', 'config.extraConfig')

    def __init__(self, devices, extra_config=()):
        self.devices = list(devices or ())
        self._by_key = {d.key: d for d in self.devices}
        self._volume_uuids = {
            o.value for o in extra_config or ()
            if o.key.startswith(VOLUME_KEY % '') and o.value}
        self._taken = {(d.controllerKey, d.unitNumber) for d in self.devices
                       if getattr(d, 'unitNumber', None) is not None}

    @classmethod
    def read(cls, session, vm_ref):
        """The VM's devices and extraConfig, in one read."""
        p = props.properties(session, [vm_ref], vim.VirtualMachine,
                             cls.PROPS).get(vm_ref, {})
        return cls(p.get('config.hardware.device'),
                   p.get('config.extraConfig'))

    # --- disks ----------------------------------------------------------

    @property
    def disks(self):
        """The VirtualDisks, in the VM's device order (an export lease
        lists them so)."""
        return [d for d in self.devices if isinstance(d, DISK)]

    def is_volume(self, disk):
        """Whether a disk is a Cinder volume's: a raw device mapping (an
        iSCSI LUN), an independent disk (vcdriver attaches volumes so,
        that an instance's snapshot never writes onto Cinder's disk; a
        root disk never is: vSphere snapshots leave independent disks
        out, so Nova's snapshot could not take it), or a disk whose
        backing uuid a ``volume-<id>`` extraConfig key records (as both
        drivers do at attach)."""
        backing = disk.backing
        if isinstance(backing, RDM):
            return True
        if (getattr(backing, 'diskMode', None) or '').startswith(
                'independent'):
            return True
        uuid = getattr(backing, 'uuid', None)
        return bool(uuid) and uuid in self._volume_uuids

    @staticmethod
    def is_rescue_disk(disk):
        return layout.is_rescue_disk(getattr(disk.backing, 'fileName', None))

    def root_disk(self, instance_uuid):
        """The instance's root VirtualDisk, or None when it has none.

        One rule: the disk whose ``backing.fileName`` is
        ``<instance uuid>.vmdk``; else the first disk on the boot
        controller; volumes' disks and the rescue disk never count.

        The name first, because it is the one mark that survives what
        reorders a VM's devices. Spawn names the root disk so (as the
        in-tree driver does) and resize keeps the name (the original
        steps aside as ``.orig.vmdk``). Rescue adds a second disk on the
        same controller that boots first; a disk detached and attached
        again (resize's grown copy, a volume swap) comes back with a new,
        higher key, so "the first disk by key" becomes an ephemeral disk
        or a volume; volumes hang on the root's controller.

        The boot controller when no disk has the name (a snapshot's
        delta, ``<uuid>-000001.vmdk``; a Storage vMotion that renamed the
        files; a VM made otherwise): a disk keeps its slot when renamed,
        and spawn puts the root at the first slot of its controller,
        ephemeral and swap after it. The boot controller is the one of
        lowest controllerKey that carries a disk of the instance's own,
        and its first disk the one of lowest unitNumber: the boot order
        the in-tree driver reads (``vm_util.get_vmdk_info``), IDE (keys
        200-201) before SCSI (1000-1003) before SATA (15000...).

        Volumes are Cinder's (``is_volume``), the rescue disk is
        rescue's, and ephemeral and swap disks (``ephemeral_<n>.vmdk``,
        ``swap.vmdk``) are the flavor's: none is ever the root, even with
        no other disk. An instance booted from an ISO with a 0 GB root
        disk has none; a resize must not grow its ephemeral disk as if
        it were.
        """
        own = [d for d in self.disks
               if not self.is_volume(d) and not self.is_rescue_disk(d)
               and not layout.is_ephemeral_or_swap(
                   getattr(d.backing, 'fileName', None))]
        for disk in own:
            if layout.is_root_disk(getattr(disk.backing, 'fileName', None),
                                   instance_uuid):
                return disk
        return min(own, key=_boot_order, default=None)

    # --- controllers ----------------------------------------------------

    def controller(self, device):
        """The controller a device hangs on (its controllerKey), or
        None."""
        return self._by_key.get(device.controllerKey)

    def bus(self, device):
        """``scsi``, ``sata`` or ``ide``: the bus of the device's
        controller; None for another (NVMe, say) or none."""
        controller = self.controller(device)
        return next((bus for bus, (cls, _units) in BUSES.items()
                     if isinstance(controller, cls)), None)

    def adapter_type(self, device):
        """The ``vmware_adaptertype`` of the device's controller (the
        image property's values, as ``vm_spec.ADAPTER_TYPES`` and
        ``ide``), or None for another controller (SATA has none)."""
        controller = self.controller(device)
        if isinstance(controller, vim.vm.device.VirtualIDEController):
            return 'ide'
        return next((name for name, cls in vm_spec.ADAPTER_TYPES.items()
                     if isinstance(controller, cls)), None)

    def instance_bus(self, instance_uuid):
        """The bus the instance's disks go on (volumes, a rescue disk):
        its root disk's; without one (an ISO boot without root disk),
        the bus spawn added a controller for, else IDE, every VM's."""
        root = self.root_disk(instance_uuid)
        bus = root is not None and self.bus(root)
        if bus:
            return bus
        for bus, (cls, _units) in BUSES.items():
            if any(isinstance(d, cls) for d in self.devices):
                return bus
        return 'ide'

    # --- slots ----------------------------------------------------------

    def free_slots(self, bus):
        """[(controllerKey, unitNumber)] free on the bus: its controllers
        by busNumber, each's units in order; slots taken by
        ``take_free_slot`` are not free any more."""
        cls, units = BUSES[bus]
        controllers = sorted((d for d in self.devices if isinstance(d, cls)),
                             key=lambda c: c.busNumber)
        return [(c.key, unit) for c in controllers for unit in units
                if (c.key, unit) not in self._taken]

    def take_free_slot(self, bus):
        """The next free (controllerKey, unitNumber) on the bus, taken
        from then on: the devices of one reconfigure get one each.
        Raises NoFreeDiskSlot when the bus is full (or has no
        controller)."""
        free = self.free_slots(bus)
        if not free:
            raise exception.NoFreeDiskSlot(bus=bus)
        self._taken.add(free[0])
        return free[0]


def _boot_order(disk):
    unit = disk.unitNumber
    return (disk.controllerKey, -1 if unit is None else unit)
