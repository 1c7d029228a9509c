"""An instance's VM as vCenter sees it, read with a pyVmomi session of the
test's own (not the driver's), and its disks' bytes from the simulator's
datastore folders: the functional tests' oracle, as tests/stack/vcenter.py
is the stack tests'. (Not the driver's vcdriver/vsphere/vm_view.py.)"""

import errno
import hashlib
import os

from pyVmomi import vim
from pyVmomi import vmodl

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


def destroy_vm(vm):
    """Power off and destroy a VM, unless it is gone already."""
    try:
        if vm.runtime.powerState == 'poweredOn':
            vcsim_harness.wait_task(vm.PowerOffVM_Task())
        vcsim_harness.wait_task(vm.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass


def remove_instance_vms(sim):
    """Destroy the VMs carrying Nova's instance marker (a compute service
    refuses to start on ones it does not know); their names."""
    names = []
    for vm in instance_vms(sim):
        names.append(vm.name)
        destroy_vm(vm)
    return names


def vm_of(sim, instance_uuid):
    si = vcsim_harness.connect(sim)
    return si.content.searchIndex.FindByUuid(
        None, instance_uuid, vmSearch=True, instanceUuid=True)


def devices(sim, instance_uuid, kind=vim.vm.device.VirtualDevice):
    vm = vm_of(sim, instance_uuid)
    return [d for d in vm.config.hardware.device if isinstance(d, kind)]


def disks(sim, instance_uuid):
    """The VM's disks in slot order: (controller bus type, device)."""
    found = devices(sim, instance_uuid)
    by_key = {d.key: d for d in found}
    result = [(type(by_key[d.controllerKey]).__name__.rpartition('.')[2], d)
              for d in found
              if isinstance(d, vim.vm.device.VirtualDisk)]
    return sorted(result, key=lambda cd: (cd[1].controllerKey,
                                          cd[1].unitNumber))


def backing_chain(disk):
    """Datastore paths of a disk and its parents, child first."""
    chain, backing = [], disk.backing
    while backing is not None:
        chain.append(backing.fileName)
        backing = getattr(backing, 'parent', None)
    return chain


def local_path(sim, datastore_path, suffix=''):
    """``[ds] a/b.vmdk`` → the simulator's file (``suffix`` e.g. -flat)."""
    ds, _, rel = datastore_path[1:].partition(']')
    rel = rel.strip()
    if suffix:
        rel = rel[:-len('.vmdk')] + suffix + '.vmdk'
    return os.path.join(sim.datastores[ds], rel)


def root_disk_extent(sim, instance_uuid):
    """The simulator's file of the flat extent the instance's root disk
    reads from.

    vcsim's delta disks hold no data of their own (nothing writes to
    them), so a linked clone reads exactly as its base disk.
    """
    _bus, root = disks(sim, instance_uuid)[0]
    return local_path(sim, backing_chain(root)[-1], '-flat')


def root_disk_bytes(sim, instance_uuid, length):
    """What the instance's root disk reads, first ``length`` bytes."""
    with open(root_disk_extent(sim, instance_uuid), 'rb') as f:
        return f.read(length)


def root_disk_blocks(sim, instance_uuid, block=4 * 1024 * 1024):
    """The instance's root disk as its guest reads it, in ``block`` bytes
    up to its capacity, from the datastore: its flat extent, or with a
    linked clone or a snapshot its delta's bytes over its parents' (a
    grain of a layer that is all zeros shows the layer below)."""
    _bus, disk = disks(sim, instance_uuid)[0]
    grain = 64 * 1024
    zero = bytes(grain)
    layers = [open(local_path(sim, path, '-flat'), 'rb')
              for path in backing_chain(disk)]
    try:
        for _ in range(disk.capacityInBytes // block):
            pieces = []
            for _ in range(block // grain):
                reads = [f.read(grain).ljust(grain, b'\0') for f in layers]
                pieces.append(next((r for r in reads if r != zero), zero))
            yield b''.join(pieces)
    finally:
        for f in layers:
            f.close()


def disk_digest(path, image_length):
    """A flat extent as vCenter stores it, set against an image of
    ``image_length`` bytes: (sha256 of its first ``image_length`` bytes,
    offset of the first non-zero byte after them or None). A disk grown
    past its image (to the flavor's root size) reads as the image and then
    zeros; only data regions are read there, holes of a thin extent read
    as zeros."""
    chunk = 8 * 1024 * 1024
    digest = hashlib.sha256()
    with open(path, 'rb', buffering=0) as f:
        fd = f.fileno()
        pos = 0
        while pos < image_length:
            data = os.pread(fd, min(chunk, image_length - pos), pos)
            if not data:
                break  # shorter than the image: the digest differs
            digest.update(data)
            pos += len(data)
        end = os.fstat(fd).st_size
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                break  # a hole up to the end
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            while pos < hole:
                data = os.pread(fd, min(chunk, hole - pos), pos)
                rest = data.lstrip(b'\0')
                if rest:
                    return digest.hexdigest(), pos + len(data) - len(rest)
                pos += len(data)
    return digest.hexdigest(), None


def root_disk_and_image(sim, instance_uuid, image_file):
    """disk_digest() of the image's disk bytes (``image_file``, e.g.
    Glance's file of a flat VMDK) and of the instance's root disk
    (root_disk_extent), in assertEqual's order: equal when the disk holds
    all of the image and zeros after it."""
    length = os.path.getsize(image_file)
    return (disk_digest(image_file, length),
            disk_digest(root_disk_extent(sim, instance_uuid), length))


def cache_extent(sim, image_id, datastore='nfs0'):
    """The simulator's file of the flat extent of an image's cache entry
    (``[ds] vcdriver_image_cache/<id>/<id>-flat.vmdk``)."""
    return os.path.join(sim.datastores[datastore], 'vcdriver_image_cache',
                        image_id, '%s-flat.vmdk' % image_id)


def extra_config(sim, instance_uuid, key):
    """The value of one extraConfig key of the VM, or None."""
    vm = vm_of(sim, instance_uuid)
    return next((o.value for o in vm.config.extraConfig or ()
                 if o.key == key), None)


def read_datastore_file(sim, datastore_path, suffix='', length=None):
    """A file's bytes over the datastore's HTTP interface (``/folder``),
    as a client of vCenter reads them."""
    import urllib.request
    ds, _, rel = datastore_path[1:].partition(']')
    rel = rel.strip()
    if suffix:
        rel = rel[:-len('.vmdk')] + suffix + '.vmdk'
    request = urllib.request.Request(sim.datastore_url(ds, rel))
    if length is not None:
        request.add_header('Range', 'bytes=0-%d' % (length - 1))
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.read()


def nics(sim, instance_uuid):
    """The VM's NICs in key order: {model, mac, address_type, port_id,
    network} where network is ``standard:<port group>``,
    ``dvs:<switch uuid>:<portgroup key>`` or ``opaque:<id>``."""
    card = vim.vm.device.VirtualEthernetCard
    found = []
    for d in sorted(devices(sim, instance_uuid, card), key=lambda d: d.key):
        b = d.backing
        if isinstance(b, card.DistributedVirtualPortBackingInfo):
            net = 'dvs:%s:%s' % (b.port.switchUuid, b.port.portgroupKey)
        elif isinstance(b, card.OpaqueNetworkBackingInfo):
            net = 'opaque:%s' % b.opaqueNetworkId
        else:
            net = 'standard:%s' % b.deviceName
        found.append({'model': type(d).__name__.rpartition('.')[2],
                      'mac': d.macAddress, 'address_type': d.addressType,
                      'port_id': d.externalId, 'network': net})
    return found


def extra_config_items(sim, instance_uuid, prefix):
    """{key: value} of the VM's extraConfig keys starting with prefix
    (empty values, i.e. removed keys, left out)."""
    vm = vm_of(sim, instance_uuid)
    return {o.key: o.value for o in vm.config.extraConfig or ()
            if o.key.startswith(prefix) and o.value}


def cluster_and_power(sim, instance_uuid):
    """(name of the cluster the VM's host is in, its power state)."""
    vm = vm_of(sim, instance_uuid)
    return vm.runtime.host.parent.name, vm.runtime.powerState


def vm_creations(sim):
    """Every VM creation vCenter recorded, oldest first, as its events
    tell (VmBeingCreatedEvent, which ImportVApp's VMs have too; not any
    log of ours): [(VM name, cluster name, host name)]. A VM removed
    since is still there. vcsim keeps its last 1000 events."""
    si = vcsim_harness.connect(sim)
    events = si.content.eventManager.QueryEvents(vim.event.EventFilterSpec(
        eventTypeId=['VmBeingCreatedEvent'], maxCount=1000))
    return [(e.vm.name, e.computeResource.name, e.host.name)
            for e in sorted(events, key=lambda e: e.key)]


# Storage policies (SPBM), through a PBM stub of the test's own session.
TAG_NAMESPACE = 'http://www.vmware.com/storage/tag'


def pbm_content(sim):
    """PBM's service content, on the test's own vCenter session."""
    import http.cookies

    from pyVmomi import pbm
    from pyVmomi import SoapAdapter

    si = vcsim_harness.connect(sim)
    cookie = http.cookies.SimpleCookie()
    cookie.load(si._stub.cookie)
    session_id = next(iter(cookie.values())).value
    port = sim.port if sim.url.startswith('https') else -sim.port
    stub = SoapAdapter.SoapStubAdapter(
        host=sim.host, port=port, path='/pbm/sdk',
        version='pbm.version.version11',
        requestContext={'vcSessionCookie': session_id})
    return pbm.ServiceInstance('ServiceInstance', stub).RetrieveContent()


def create_tag_policy(sim, name, category, tag):
    """A tag-based storage policy, as vCenter's UI makes one: datastores
    with ``tag`` of ``category`` satisfy it. Returns its profile id."""
    from pyVmomi import pbm

    rule = pbm.capability.CapabilityInstance(
        id=pbm.capability.CapabilityMetadata.UniqueId(
            namespace=TAG_NAMESPACE, id=category),
        constraint=[pbm.capability.ConstraintInstance(propertyInstance=[
            pbm.capability.PropertyInstance(
                id='com.vmware.storage.tag.%s.property' % category,
                value=pbm.capability.types.DiscreteSet(values=[tag]))])])
    spec = pbm.profile.CapabilityBasedProfileCreateSpec(
        name=name, category='REQUIREMENT',
        resourceType=pbm.profile.ResourceType(resourceType='STORAGE'),
        constraints=pbm.profile.SubProfileCapabilityConstraints(
            subProfiles=[pbm.profile.SubProfileCapabilityConstraints
                         .SubProfile(name='tags', capability=[rule])]))
    return pbm_content(sim).profileManager.PbmCreate(spec).uniqueId


def policy_ids(sim):
    """{policy name: profile id} of vCenter's storage policies."""
    from pyVmomi import pbm

    manager = pbm_content(sim).profileManager
    ids = manager.PbmQueryProfile(
        resourceType=pbm.profile.ResourceType(resourceType='STORAGE'),
        profileCategory='REQUIREMENT')
    return {p.name: p.profileId.uniqueId
            for p in manager.PbmRetrieveContent(ids)}


def storage_profiles(sim, instance_uuid):
    """{'home': [profile ids of the VM home], disk file: [profile ids]}
    as PBM reports them."""
    from pyVmomi import pbm

    vm = vm_of(sim, instance_uuid)
    manager = pbm_content(sim).profileManager

    def ids(kind, key):
        return [p.uniqueId for p in manager.PbmQueryAssociatedProfile(
            pbm.ServerObjectRef(objectType=kind, key=key))]

    found = {'home': ids('virtualMachine', vm._moId)}
    for d in vm.config.hardware.device:
        if isinstance(d, vim.vm.device.VirtualDisk):
            found[d.backing.fileName] = ids(
                'virtualDiskId', '%s:%d' % (vm._moId, d.key))
    return found


def files_datastores(sim, instance_uuid):
    """The datastores of the VM's .vmx, of each disk, and vCenter's
    ``datastore`` list of the VM."""
    vm = vm_of(sim, instance_uuid)
    paths = [vm.config.files.vmPathName] + [
        d.backing.fileName for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk)]
    return ({p[1:p.index(']')] for p in paths},
            sorted(ds.name for ds in vm.datastore))
