"""vSphere ConfigSpecs for Nova instances: pure builders, no calls."""

from pyVmomi import vim

from vcdriver import datastore_layout as layout

# extraConfig key the in-tree driver sets too, so either driver recognises
# the other's instances.
INSTANCE_UUID_KEY = 'nvp.vm-uuid'

ADAPTER_TYPES = {
    'lsiLogic': vim.vm.device.VirtualLsiLogicController,
    'lsiLogicsas': vim.vm.device.VirtualLsiLogicSASController,
    'busLogic': vim.vm.device.VirtualBusLogicController,
    'paraVirtual': vim.vm.device.ParaVirtualSCSIController,
}
DEFAULT_ADAPTER_TYPE = 'lsiLogic'
# hw_disk_bus values a vCenter VM can take; IDE disks hang on the two IDE
# controllers every VM gets, SCSI and SATA ones on a controller we add.
DISK_BUSES = ('scsi', 'ide', 'sata')
# Nova's hw_vif_model values (nova.network.model) and VMware's NIC types.
VIF_MODELS = {
    'e1000': vim.vm.device.VirtualE1000,
    'e1000e': vim.vm.device.VirtualE1000e,
    'vmxnet': vim.vm.device.VirtualVmxnet,
    'vmxnet3': vim.vm.device.VirtualVmxnet3,
    'pcnet': vim.vm.device.VirtualPCNet32,
}
DEFAULT_VIF_MODEL = 'vmxnet3'
DEFAULT_GUEST_ID = 'otherGuest'
# The first of the two IDE controllers vCenter gives every new VM.
IDE_CONTROLLER_KEY = 200
_MAX_NAME = 80
# vCenter keeps these escaped in names, and its limit counts the escapes.
_NAME_ESCAPES = {'%': '%25', '/': '%2f', '\\': '%5c'}


def vm_name(instance):
    """``display name (uuid)``, as the in-tree driver names VMs; the
    display name is cut so that the name, as vCenter stores it (``%``,
    ``/`` and ``\\`` escaped), keeps within 80 characters."""
    suffix = ' (%s)' % instance.uuid
    room = _MAX_NAME - len(suffix)
    display = ''
    for char in instance.display_name or '':
        room -= len(_NAME_ESCAPES.get(char, char))
        if room < 0:
            break
        display += char
    return (display + suffix) if display else instance.uuid


def _add(device, file_operation=None):
    change = vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
        device=device)
    if file_operation:
        change.fileOperation = file_operation
    return change


def scsi_controller(adapter_type, key=-100):
    """The SCSI controller the root disk hangs on (bus 0)."""
    controller_cls = ADAPTER_TYPES.get(adapter_type)
    if controller_cls is None:
        raise ValueError('unknown vmware_adaptertype %r (known: %s)'
                         % (adapter_type, ', '.join(sorted(ADAPTER_TYPES))))
    return _add(controller_cls(
        key=key, busNumber=0,
        sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing))


def bus_controller(bus, adapter_type, key=-100):
    """The controller a bus needs added to a new VM, or None for IDE."""
    if bus == 'scsi':
        return scsi_controller(adapter_type, key)
    if bus == 'sata':
        return _add(vim.vm.device.VirtualAHCIController(key=key,
                                                        busNumber=0))
    return None


def vmdk_adapter_type(adapter_type):
    """What VirtualDiskManager takes: it knows only three adapter types;
    a disk moves between SCSI controllers freely."""
    return 'ide' if adapter_type == 'ide' else (
        'busLogic' if adapter_type == 'busLogic' else 'lsiLogic')


def profile_specs(profile_id):
    """A storage policy (its PBM profile id) as a ConfigSpec's
    ``vmProfile`` (the VM home) or a disk change's ``profile`` take it;
    [] for none (vCenter's default, the datastore's)."""
    return [vim.vm.DefinedProfileSpec(profileId=profile_id)] if (
        profile_id) else []


def disk(key, controller_key, unit_number, disk_path, size_bytes,
         create=False, thin=True, parent=None, profile_id=None):
    """A disk on a controller slot.

    ``create`` has vCenter make an empty disk at ``disk_path``; with
    ``parent`` that disk is a delta of the parent (a linked clone), which
    then fixes its size. ``profile_id``: the storage policy vCenter
    applies to it.
    """
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=str(disk_path), diskMode='persistent')
    if create:
        backing.thinProvisioned = thin
    if parent is not None:
        backing.parent = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=str(parent), diskMode='persistent')
    change = _add(vim.vm.device.VirtualDisk(
        key=key, controllerKey=controller_key, unitNumber=unit_number,
        capacityInKB=-(-size_bytes // 1024), backing=backing),
        file_operation='create' if create else None)
    if profile_id:
        change.profile = profile_specs(profile_id)
    return change


def disk_locator(disk_key, datastore_ref, profile_id=None):
    """Where RelocateVM_Task puts a disk, and the storage policy vCenter
    applies to it there (none: it keeps its own)."""
    return vim.vm.RelocateSpec.DiskLocator(
        diskId=disk_key, datastore=datastore_ref,
        profile=profile_specs(profile_id))


def cdrom(key, controller_key, unit_number, iso_path):
    """A CD-ROM with an ISO file from a datastore, connected at power-on."""
    return _add(vim.vm.device.VirtualCdrom(
        key=key, controllerKey=controller_key, unitNumber=unit_number,
        backing=vim.vm.device.VirtualCdrom.IsoBackingInfo(
            fileName=str(iso_path)),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, allowGuestControl=True, connected=True)))


def remove(device, destroy_file=False):
    """Take a device off the VM; ``destroy_file`` deletes its disk file."""
    change = vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.remove,
        device=device)
    if destroy_file:
        change.fileOperation = 'destroy'
    return change


def boot_order(disk_keys):
    """Boot options trying these disks in order; [] restores the BIOS
    default order."""
    return vim.vm.BootOptions(bootOrder=[
        vim.vm.BootOptions.BootableDiskDevice(deviceKey=key)
        for key in disk_keys])


def create_spec(instance, flavor, datastore_name, devices, specs,
                profile_id=None):
    """ConfigSpec for CreateVM_Task; vCenter makes ``[ds] <uuid>/``.
    ``specs`` (extra_specs.ExtraSpecs): the hardware version and guest id
    the VM is made with, and what ``tune`` sets; ``profile_id``: the
    storage policy of the VM home."""
    spec = vim.vm.ConfigSpec(
        name=vm_name(instance),
        guestId=specs.guest_id or DEFAULT_GUEST_ID,
        instanceUuid=instance.uuid,
        numCPUs=flavor.vcpus,
        memoryMB=flavor.memory_mb,
        files=vim.vm.FileInfo(
            vmPathName=layout.vm_path_name(datastore_name, instance.uuid)),
        extraConfig=[vim.option.OptionValue(key=INSTANCE_UUID_KEY,
                                            value=instance.uuid)],
        deviceChange=devices)
    if specs.hw_version:
        spec.version = specs.hw_version
    if profile_id:
        spec.vmProfile = profile_specs(profile_id)
    return tune(spec, specs)


def resource_allocation(allocation, cls=vim.ResourceAllocationInfo):
    """An extra_specs.Allocation as vSphere's ``cls``: the VM's CPU and
    memory (ResourceAllocationInfo), a disk's I/O
    (StorageResourceManager.IOAllocationInfo) or a NIC's bandwidth
    (VirtualEthernetCard.ResourceAllocation, whose shares are
    ``share``). Always whole: a resize to a flavor without the specs puts
    vSphere's defaults back."""
    info = cls(limit=-1 if allocation.limit is None else allocation.limit,
               reservation=allocation.reservation)
    shares = vim.SharesInfo(level=allocation.shares_level,
                            shares=allocation.shares)
    if cls is vim.vm.device.VirtualEthernetCard.ResourceAllocation:
        info.share = shares
    else:
        info.shares = shares
    return info


def tune(spec, specs):
    """The VM-wide part of ``specs`` on a ConfigSpec (create, resize):
    CPU and memory allocation, cores per socket, firmware and secure
    boot."""
    spec.cpuAllocation = resource_allocation(specs.cpu)
    spec.memoryAllocation = resource_allocation(specs.memory)
    spec.numCoresPerSocket = specs.cores_per_socket
    if specs.firmware:
        spec.firmware = specs.firmware
    if specs.secure_boot is not None:
        spec.bootOptions = vim.vm.BootOptions(
            efiSecureBootEnabled=specs.secure_boot)
    return spec


def edit(device):
    return vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.edit,
        device=device)


def tune_devices(found, specs, profile_id=None):
    """Edits giving the devices of ``found`` (devices.Devices) the
    per-device part of ``specs``: every disk of the instance its I/O
    allocation (a volume's disk keeps Cinder's), every NIC its bandwidth,
    the video card the image's RAM. Edits of the devices as they are,
    so spawn and resize set them alike (and vCenter makes a new VM's
    video card itself). ``profile_id``: the storage policy the
    instance's disks get (a volume's disk keeps Cinder's)."""
    card = vim.vm.device.VirtualEthernetCard
    changes = []
    for disk_ in found.disks:
        if not found.is_volume(disk_):
            disk_.storageIOAllocation = resource_allocation(
                specs.disk_io, vim.StorageResourceManager.IOAllocationInfo)
            change = edit(disk_)
            if profile_id:
                change.profile = profile_specs(profile_id)
            changes.append(change)
    for device in found.devices:
        if isinstance(device, card):
            device.resourceAllocation = resource_allocation(
                specs.vif, card.ResourceAllocation)
            changes.append(edit(device))
        elif (isinstance(device, vim.vm.device.VirtualVideoCard) and
              specs.video_ram_kb):
            device.videoRamSizeInKB = specs.video_ram_kb
            changes.append(edit(device))
    return changes


def import_spec(name, home, disk_path, size_bytes, adapter_type):
    """ImportVApp's spec for a VM that exists only to take one disk: an
    NFC import lease writes disks of VMs, never loose files. Its files
    go in ``home``, its empty thin disk at ``disk_path``; it is never
    powered on and is unregistered once the disk is in."""
    if adapter_type == 'ide':
        devices, controller_key = [], IDE_CONTROLLER_KEY
    else:
        devices, controller_key = [scsi_controller(adapter_type)], -100
    devices.append(disk(-101, controller_key, 0, disk_path, size_bytes,
                        create=True, thin=True))
    return vim.vm.VmImportSpec(configSpec=vim.vm.ConfigSpec(
        name=name, guestId=DEFAULT_GUEST_ID, numCPUs=1, memoryMB=4,
        # A full .vmx path: vCenter then makes no folder of its own.
        files=vim.vm.FileInfo(vmPathName='%s/%s.vmx' % (home, name)),
        deviceChange=devices))


def volume_disk(key, controller_key, unit_number, disk_path, capacity_kb,
                disk_mode='independent_persistent'):
    """An existing disk that belongs to a Cinder volume.

    Independent, so a vSphere snapshot of the instance (Nova's snapshot)
    never writes a delta onto Cinder's disk; no ``fileOperation``, so
    vCenter neither creates nor replaces the file.
    """
    return _add(vim.vm.device.VirtualDisk(
        key=key, controllerKey=controller_key, unitNumber=unit_number,
        capacityInKB=capacity_kb,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=str(disk_path), diskMode=disk_mode)))


def extra_config(options):
    """ConfigSpec extraConfig entries; an empty value removes the key."""
    return [vim.option.OptionValue(key=k, value=v)
            for k, v in sorted(options.items())]


def rdm_disk(key, controller_key, unit_number, device_name, lun_uuid,
             capacity_kb):
    """A LUN as a physical-mode raw device mapping, as in-tree attaches
    iSCSI volumes; vCenter creates the mapping file in the VM's folder.
    Independent: vSphere cannot snapshot a physical RDM."""
    return _add(vim.vm.device.VirtualDisk(
        key=key, controllerKey=controller_key, unitNumber=unit_number,
        capacityInKB=capacity_kb,
        backing=vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo(
            fileName='', deviceName=device_name, lunUuid=lun_uuid,
            compatibilityMode='physicalMode',
            diskMode='independent_persistent')),
        file_operation='create')


# extraConfig key of the Neutron port behind the NIC at that index, as
# in-tree sets it: NSX finds the port by it, and detach finds the NIC.
IFACE_ID_KEY = 'nvp.iface-id.%d'
# The guest's network settings for VMware Tools to read (``vmtoolsd
# --cmd machine.id.get``), in-tree's key and format (network.machine_id).
MACHINE_ID_KEY = 'machine.id'


def standard_network_backing(port_group):
    """A NIC on a standard (host) port group, named as on every host."""
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
        deviceName=port_group)


def distributed_port_backing(switch_uuid, portgroup_key, port_key=None):
    """A NIC on a distributed port group, optionally a given DV port."""
    connection = vim.dvs.PortConnection(switchUuid=switch_uuid,
                                        portgroupKey=portgroup_key)
    if port_key:
        connection.portKey = port_key
    card = vim.vm.device.VirtualEthernetCard
    return card.DistributedVirtualPortBackingInfo(port=connection)


def opaque_network_backing(network_id, network_type):
    """A NIC on an NSX opaque network (an NSX-T logical switch)."""
    return vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo(
        opaqueNetworkId=network_id, opaqueNetworkType=network_type)


def nic(key, vif_model, mac_address, backing, port_id=None):
    """A NIC with Neutron's MAC (``manual``: vCenter must not pick one),
    connected at power-on and, hot-added, at once."""
    device = VIF_MODELS[vif_model](
        key=key, addressType='manual', macAddress=mac_address,
        backing=backing, wakeOnLanEnabled=True,
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, allowGuestControl=True, connected=True))
    if port_id:
        device.externalId = port_id
    return _add(device)


def serial_port_uri(key, service_uri, proxy_uri=None):
    """A serial port on the network (a virtual serial port concentrator
    listening at ``service_uri``), as in-tree configures it."""
    backing = vim.vm.device.VirtualSerialPort.URIBackingInfo(
        direction='server', serviceURI=service_uri)
    if proxy_uri:
        backing.proxyURI = proxy_uri
    return _add(vim.vm.device.VirtualSerialPort(
        key=key, yieldOnPoll=True, backing=backing,
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, allowGuestControl=True, connected=True)))
