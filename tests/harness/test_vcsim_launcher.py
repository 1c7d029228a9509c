"""The vcsim launcher (tools/vcsim) driven from pyVmomi, as the driver will."""

import http.client
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest
from pyVmomi import vim
from pyVmomi import vmodl

from tests.harness import vcsim as vcsim_harness
from tests.harness.vcsim import connect
from tests.harness.vcsim import Vcsim

PC = vmodl.query.PropertyCollector


@pytest.fixture
def make_vcsim():
    """Start launchers with any options; all are stopped at teardown."""
    started = []

    def make(**kwargs):
        sim = Vcsim(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def wait_task(task, timeout=10):
    deadline = time.monotonic() + timeout
    while task.info.state not in ('success', 'error'):
        assert time.monotonic() < deadline, 'task did not finish'
        time.sleep(0.01)
    return task.info


def put(sim, ds, path, data):
    req = urllib.request.Request(
        sim.datastore_url(ds, path), data=data, method='PUT'
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


DESCRIPTOR = """# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
"""


def vm_spec(name, disk_path, vmx_path, instance_uuid, capacity_kb=0):
    ctrl = vim.vm.device.VirtualDeviceSpec(
        operation='add',
        device=vim.vm.device.VirtualLsiLogicController(
            key=-100, busNumber=0, sharedBus='noSharing'
        ),
    )
    disk = vim.vm.device.VirtualDeviceSpec(
        operation='add',  # no fileOperation: attach the existing vmdk
        device=vim.vm.device.VirtualDisk(
            key=-101,
            controllerKey=-100,
            unitNumber=0,
            capacityInKB=capacity_kb,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=disk_path, diskMode='persistent', thinProvisioned=True
            ),
        ),
    )
    return vim.vm.ConfigSpec(
        name=name,
        guestId='otherGuest64',
        numCPUs=1,
        memoryMB=256,
        instanceUuid=instance_uuid,
        files=vim.vm.FileInfo(vmPathName=vmx_path),
        deviceChange=[ctrl, disk],
    )


def test_start_prints_info_and_builds_inventory(make_vcsim):
    t0 = time.monotonic()
    sim = make_vcsim(clusters=2, hosts_per_cluster=2, nfs=2)
    assert time.monotonic() - t0 < 5
    info = sim.info
    assert set(info) == {
        'url',
        'host',
        'port',
        'datastores',
        'clusters',
        'about_uuid',
    }
    assert info['url'] == 'http://127.0.0.1:%d/sdk' % info['port']
    assert sim.clusters == ['DC0_C0', 'DC0_C1']
    assert sorted(sim.datastores) == ['nfs0', 'nfs1']
    for d in sim.datastores.values():
        assert os.path.isdir(d)

    si = connect(sim)
    content = si.RetrieveContent()
    assert content.about.apiType == 'VirtualCenter'
    assert content.about.instanceUuid == info['about_uuid']
    dc = content.rootFolder.childEntity[0]
    clusters = {c.name: c for c in dc.hostFolder.childEntity}
    assert sorted(clusters) == sim.clusters
    hosts = [h for c in clusters.values() for h in c.host]
    assert len(hosts) == 4
    assert dc.vmFolder.childEntity == []  # -vms 0: no VMs
    for ds in dc.datastore:
        s = ds.summary
        assert s.type == 'NFS' and s.accessible
        assert s.url == sim.datastores[s.name]
        assert sorted(m.key.name for m in ds.host) == sorted(
            h.name for h in hosts
        )
        assert ds.info.nas.remotePath == '/exports/' + s.name
        # vcsim: capacity = 1 TiB per mounted host, free = capacity
        assert s.capacity == 4 * 2**40 and s.freeSpace == s.capacity


def test_host_capacity_and_cluster_summary(make_vcsim):
    sim = make_vcsim(
        hosts_per_cluster=3,
        host_memory_mb=65536,
        host_cpu_cores=8,
        datastore_capacity_gb=500,
    )
    content = connect(sim).RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    cluster = dc.hostFolder.childEntity[0]
    for h in cluster.host:
        assert h.summary.hardware.memorySize == 65536 * 2**20
        assert h.hardware.memorySize == 65536 * 2**20
        assert h.summary.hardware.numCpuCores == 8
        assert h.hardware.cpuInfo.numCpuCores == 8
        assert h.hardware.cpuInfo.numCpuThreads == 8
    mhz = cluster.host[0].summary.hardware.cpuMhz
    s = cluster.summary
    assert s.numHosts == 3 and s.numCpuCores == 24
    assert s.totalMemory == 3 * 65536 * 2**20  # bytes
    assert s.effectiveMemory == 3 * 65536  # MB, as vCenter reports it
    assert s.totalCpu == s.effectiveCpu == 3 * 8 * mhz
    ds = dc.datastore[0].summary
    assert ds.capacity == ds.freeSpace == 500 * 2**30


def test_uploads_are_counted_and_land_on_disk(make_vcsim):
    sim = make_vcsim()
    sim.reset_stats()
    assert sim.stats() == {'folder_puts': {}, 'folder_put_total': 0,
                           'soap_calls': {}, 'soap_call_total': 0}
    put(sim, 'nfs0', 'images/a.bin', b'hello')
    put(sim, 'nfs0', 'images/a.bin', b'hello again')
    put(sim, 'nfs0', 'b.txt', b'x')
    stats = sim.stats()
    assert stats['folder_puts'] == {'nfs0/images/a.bin': 2, 'nfs0/b.txt': 1}
    assert stats['folder_put_total'] == 3
    # Datastore uploads are not SOAP calls.
    assert stats['soap_call_total'] == 0
    with open(sim.datastore_path('nfs0', 'images/a.bin'), 'rb') as f:
        assert f.read() == b'hello again'
    with urllib.request.urlopen(
        sim.datastore_url('nfs0', 'b.txt')
    ) as r:  # GET
        assert r.read() == b'x'
    sim.reset_stats()
    assert sim.stats()['folder_put_total'] == 0


def test_spawn_like_disk_flow(make_vcsim):
    """Upload a vmdk pair, copy it (no destDatacenter, with a destSpec),
    extend it, boot a VM on it, find it, destroy it."""
    sim = make_vcsim(vms=0)
    si = connect(sim)
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    vdm = content.virtualDiskManager
    fm = content.fileManager
    flat = os.urandom(1 << 20)
    put(sim, 'nfs0', 'cache/img/img-flat.vmdk', flat)
    put(
        sim,
        'nfs0',
        'cache/img/img.vmdk',
        (DESCRIPTOR % (2048, 'img-flat.vmdk')).encode(),
    )

    # The destination folder must exist (as on vCenter).
    info = wait_task(
        vdm.CopyVirtualDisk_Task(
            sourceName='[nfs0] cache/img/img.vmdk',
            sourceDatacenter=dc,
            destName='[nfs0] nodir/x.vmdk',
        )
    )
    assert info.state == 'error' and isinstance(
        info.error, vim.fault.FileNotFound
    )

    inst = str(uuid.uuid4())
    fm.MakeDirectory(
        name='[nfs0] %s' % inst, datacenter=dc, createParentDirectories=True
    )
    info = wait_task(
        vdm.CopyVirtualDisk_Task(
            sourceName='[nfs0] cache/img/img.vmdk',
            sourceDatacenter=dc,
            destName='[nfs0] %s/%s.vmdk' % (inst, inst),
            destSpec=vim.VirtualDiskManager.VirtualDiskSpec(
                diskType='thin', adapterType='lsiLogic'
            ),
        )
    )
    assert info.state == 'success', info.error
    assert (
        info.entity is None
    )  # launcher fix: was VirtualDiskManager, unreadable by pyVmomi
    vm_dir = sim.datastore_path('nfs0', inst)
    with open(os.path.join(vm_dir, inst + '-flat.vmdk'), 'rb') as f:
        assert f.read() == flat  # bytes copied
    with open(os.path.join(vm_dir, inst + '.vmdk')) as f:
        assert (
            'RW 2048 VMFS "img-flat.vmdk"' in f.read()
        )  # descriptor copied verbatim

    info = wait_task(
        vdm.ExtendVirtualDisk_Task(
            name='[nfs0] %s/%s.vmdk' % (inst, inst),
            datacenter=dc,
            newCapacityKb=4096,
            eagerZero=False,
        )
    )
    assert info.state == 'success', info.error
    with open(os.path.join(vm_dir, inst + '.vmdk')) as f:
        assert (
            'RW 8192 VMFS' in f.read()
        )  # descriptor only; -flat.vmdk keeps its size
    assert (
        os.path.getsize(os.path.join(vm_dir, inst + '-flat.vmdk')) == 1 << 20
    )

    cluster = dc.hostFolder.childEntity[0]
    spec = vm_spec(
        inst,
        '[nfs0] %s/%s.vmdk' % (inst, inst),
        '[nfs0] %s/%s.vmx' % (inst, inst),
        inst,
        capacity_kb=4096,
    )
    info = wait_task(
        dc.vmFolder.CreateVM_Task(config=spec, pool=cluster.resourcePool)
    )
    assert info.state == 'success', info.error
    vm = info.result
    assert sorted(os.listdir(vm_dir)) == sorted(
        [
            inst + '.vmdk',
            inst + '-flat.vmdk',
            inst + '.vmx',
            inst + '.nvram',
            'vmware.log',
        ]
    )
    disk = [
        d
        for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk)
    ][0]
    assert (
        disk.capacityInKB == 4096
    )  # from the spec: vcsim does not read the descriptor
    assert vm.runtime.faultToleranceState == 'notConfigured'  # launcher fix

    found = content.searchIndex.FindAllByUuid(
        uuid=inst, vmSearch=True, instanceUuid=True
    )
    assert [v._moId for v in found] == [vm._moId]

    assert wait_task(vm.PowerOnVM_Task()).state == 'success'
    info = wait_task(vm.Destroy_Task())
    assert info.state == 'error' and isinstance(
        info.error, vim.fault.InvalidPowerState
    )
    assert wait_task(vm.PowerOffVM_Task()).state == 'success'
    assert wait_task(vm.Destroy_Task()).state == 'success'
    assert not os.path.exists(vm_dir)
    assert os.path.exists(
        sim.datastore_path('nfs0', 'cache/img/img-flat.vmdk')
    )
    assert (
        content.searchIndex.FindAllByUuid(
            uuid=inst, vmSearch=True, instanceUuid=True
        )
        == []
    )


def _wait_states(content, task):
    pc = content.propertyCollector.CreatePropertyCollector()
    try:
        pc.CreateFilter(
            PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=task)],
                propSet=[
                    PC.PropertySpec(type=vim.Task, pathSet=['info.state'])
                ],
            ),
            True,
        )
        version, states = '', []
        deadline = time.monotonic() + 10
        while not states or states[-1] not in ('success', 'error'):
            assert time.monotonic() < deadline
            upd = pc.WaitForUpdatesEx(
                version, PC.WaitOptions(maxWaitSeconds=2)
            )
            if upd is None:
                continue
            version = upd.version
            states += [
                c.val
                for fs in upd.filterSet
                for o in fs.objectSet
                for c in o.changeSet
                if c.name == 'info.state'
            ]
        return states
    finally:
        pc.Destroy()


def test_task_updates_guest_tools_and_reboot(make_vcsim):
    sim = make_vcsim(vms=1, task_delay=0.2, guest_tools=True)
    content = connect(sim).RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    vm = dc.vmFolder.childEntity[0]
    assert vm.name == 'DC0_C0_RP0_VM0'
    assert vm.runtime.powerState == 'poweredOn'
    assert vm.guest.toolsRunningStatus == 'guestToolsRunning'
    vm.RebootGuest()

    assert _wait_states(content, vm.PowerOffVM_Task()) == [
        'running',
        'success',
    ]
    assert vm.guest.toolsRunningStatus == 'guestToolsNotRunning'
    with pytest.raises(vim.fault.InvalidPowerState):
        vm.RebootGuest()

    task = content.virtualDiskManager.DeleteVirtualDisk_Task(
        name='[nfs0] nope.vmdk', datacenter=dc
    )
    assert _wait_states(content, task) == ['running', 'error']
    assert isinstance(task.info.error, vim.fault.FileNotFound)


def test_stock_vms_have_no_tools(make_vcsim):
    sim = make_vcsim(vms=1)
    vm = (
        connect(sim)
        .RetrieveContent()
        .rootFolder.childEntity[0]
        .vmFolder.childEntity[0]
    )
    assert vm.guest.toolsRunningStatus == 'guestToolsNotRunning'
    with pytest.raises(vim.fault.ToolsUnavailable):
        vm.RebootGuest()


def test_retrieve_properties_paging(make_vcsim):
    sim = make_vcsim(hosts_per_cluster=5)
    content = connect(sim).RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.HostSystem], True
    )
    spec = PC.FilterSpec(
        objectSet=[
            PC.ObjectSpec(
                obj=view,
                skip=True,
                selectSet=[
                    PC.TraversalSpec(
                        name='v',
                        path='view',
                        skip=False,
                        type=vim.view.ContainerView,
                    )
                ],
            )
        ],
        propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=['name'])],
    )
    pc = content.propertyCollector
    res = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions(maxObjects=2))
    pages = [len(res.objects)]
    names = [o.propSet[0].val for o in res.objects]
    while res.token:
        res = pc.ContinueRetrievePropertiesEx(res.token)
        pages.append(len(res.objects))
        names += [o.propSet[0].val for o in res.objects]
    assert pages == [2, 2, 1]
    assert sorted(names) == ['DC0_C0_H%d' % i for i in range(5)]


def test_credentials_and_session_idle_expiry(make_vcsim):
    sim = make_vcsim(
        username='admin', password='s3cret', session_idle_timeout=0.3
    )
    with pytest.raises(vim.fault.InvalidLogin):
        connect(sim, pwd='wrong')
    si = connect(sim)
    for _ in range(3):  # activity keeps the session alive
        time.sleep(0.2)
        assert si.content.sessionManager.currentSession.userName == 'admin'
    time.sleep(0.8)  # idle: expires between 1x and 2x the timeout
    with pytest.raises(vim.fault.NotAuthenticated):
        _ = si.content.rootFolder.childEntity


def test_tls_with_our_certificate(make_vcsim, tmp_path):
    from cryptography import x509

    from tests.harness import tls

    cert, key, name = tls.self_signed(tmp_path)
    sim = make_vcsim(tls_cert=cert, tls_key=key)
    assert sim.url.startswith('https://127.0.0.1:')
    si = connect(sim)
    assert si.content.about.apiType == 'VirtualCenter'
    import ssl

    served = ssl.get_server_certificate((sim.host, sim.port))
    assert x509.load_pem_x509_certificate(served.encode()).subject == name


def test_bigger_inventory_and_vms(make_vcsim, tmp_path):
    sim = make_vcsim(
        datacenters=2,
        clusters=2,
        hosts_per_cluster=1,
        standalone_hosts=1,
        vms=1,
        datastore_root=tmp_path,
    )
    assert sim.clusters == ['DC0_C0', 'DC0_C1', 'DC1_C0', 'DC1_C1']
    assert sim.datastores == {'nfs0': str(tmp_path / 'nfs0')}
    content = connect(sim).RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True
    )
    names = sorted(vm.name for vm in view.view)
    assert names == sorted(
        ['DC%d_C%d_RP0_VM0' % (d, c) for d in range(2) for c in range(2)]
        + ['DC%d_H0_VM0' % d for d in range(2)]
    )
    for vm in view.view:
        assert vm.config.files.vmPathName.startswith('[nfs0] ')
        assert vm.runtime.powerState == 'poweredOn'
    sim.stop()
    assert os.path.isdir(tmp_path / 'nfs0')  # a given root is kept


def test_stop_removes_temp_root_and_bad_start_reports_stderr(make_vcsim):
    sim = make_vcsim()
    root = os.path.dirname(sim.datastores['nfs0'])
    assert os.path.isdir(root)
    assert sim.stop() == 0
    assert not os.path.exists(root)

    with pytest.raises(
        vcsim_harness.VcsimError, match='-tls-cert and -tls-key go together'
    ):
        Vcsim(extra_args=['-tls-cert', 'x']).start()


def test_build_is_cached():
    t0 = time.monotonic()
    path = vcsim_harness.build_launcher()
    assert os.access(path, os.X_OK)
    assert vcsim_harness.build_launcher() == path
    assert time.monotonic() - t0 < 60


# -- fault injection (tools/vcsim/faults.go) ---------------------------


def _vm_names(si):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True
    )
    try:
        return sorted(vm.name for vm in view.view)
    finally:
        view.Destroy()


def test_fault_soap_fault_refuses_the_call(make_vcsim):
    sim = make_vcsim()
    si = connect(sim)
    folder = si.content.rootFolder.childEntity[0].vmFolder
    fault_id = sim.inject(
        kind='soap_fault',
        method='CreateFolder',
        object='vm',
        fault='InvalidState',
        message='not now (simulated)',
        skip=1,
    )
    folder.CreateFolder('first')  # skipped
    with pytest.raises(vim.fault.InvalidState) as e:
        folder.CreateFolder('second')
    assert e.value.msg == 'not now (simulated)'
    folder.CreateFolder('third')  # times: 1
    (rule,) = sim.faults()
    assert (rule['id'], rule['hits'], rule['seen']) == (fault_id, 1, 2)
    sim.clear_faults(fault_id)
    assert sim.faults() == []
    assert sorted(f.name for f in folder.childEntity) == ['first', 'third']


def test_fault_task_fail_with_progress(make_vcsim):
    sim = make_vcsim(hosts_per_cluster=1, vms=1)
    si = connect(sim)
    vm = si.content.searchIndex.FindByInventoryPath('DC0/vm/DC0_C0_RP0_VM0')
    sim.inject(
        kind='task_fail',
        method='PowerOffVM_Task',
        object=vm.config.instanceUuid,
        fault='InsufficientResourcesFault',
        message='no memory (simulated)',
        progress=[50],
    )
    info = wait_task(vm.PowerOffVM_Task())
    assert info.state == 'error'
    assert isinstance(info.error, vim.fault.InsufficientResourcesFault)
    assert info.error.msg == 'no memory (simulated)'
    assert info.entity == vm
    assert vm.runtime.powerState == 'poweredOn'


def test_fault_session_expiry_needs_a_new_login(make_vcsim):
    sim = make_vcsim()
    si = connect(sim)
    si.CurrentTime()
    sim.inject(kind='session_expiry')
    with pytest.raises(vim.fault.NotAuthenticated):
        si.CurrentTime()
    assert sim.faults()[0]['hits'] >= 1  # sessions ended
    connect(sim).CurrentTime()


def _old_session_call(si):
    try:
        si.CurrentTime()
        return 'ok'
    except vim.fault.NotAuthenticated:
        return 'NotAuthenticated'
    except (OSError, http.client.HTTPException):
        return 'connection'


def test_fault_restart_refuses_then_recovers(make_vcsim):
    sim = make_vcsim(hosts_per_cluster=1, vms=1)
    si = connect(sim)
    before = _vm_names(si)
    sim.inject(kind='restart', seconds=1)
    t0 = time.monotonic()
    assert _old_session_call(si) == 'connection'
    with pytest.raises((OSError, http.client.HTTPException)):
        connect(sim)
    with pytest.raises(OSError):
        urllib.request.urlopen(sim.datastore_url('nfs0', 'x'), timeout=5)
    time.sleep(max(0, 1.1 - (time.monotonic() - t0)))
    # The old session is gone (its first call may still meet the
    # connection the restart closed).
    results = [_old_session_call(si) for _ in range(2)]
    assert 'NotAuthenticated' in results and 'ok' not in results
    assert _vm_names(connect(sim)) == before


def test_fault_http_error_on_datastore_put(make_vcsim):
    sim = make_vcsim()
    sim.inject(kind='http_error', http_method='PUT', status=507)
    with pytest.raises(urllib.error.HTTPError) as e:
        put(sim, 'nfs0', 'a.bin', b'x' * 1000)
    assert e.value.code == 507
    assert not os.path.exists(sim.datastore_path('nfs0', 'a.bin'))
    sim.inject(kind='http_error', http_method='PUT', cut_after_bytes=1000)
    with pytest.raises((OSError, http.client.HTTPException)):
        put(sim, 'nfs0', 'a.bin', b'x' * (4 << 20))
    put(sim, 'nfs0', 'a.bin', b'x' * 1000)  # both fired once
    assert os.path.getsize(sim.datastore_path('nfs0', 'a.bin')) == 1000
    assert [f['hits'] for f in sim.faults()] == [1, 1]


# -- datastore space (tools/vcsim/datastore_space.go) ------------------


def test_datastore_space_set_while_running(make_vcsim):
    sim = make_vcsim(nfs=2, hosts_per_cluster=1, datastore_capacity_gb=100)
    content = connect(sim).RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    nfs1 = next(ds for ds in dc.datastore if ds.name == 'nfs1')

    # A watch opened before the change, as the driver's would be.
    pc = content.propertyCollector.CreatePropertyCollector()
    try:
        pc.CreateFilter(
            PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=nfs1)],
                propSet=[
                    PC.PropertySpec(
                        type=vim.Datastore,
                        pathSet=['summary.freeSpace', 'info.freeSpace'],
                    )
                ],
            ),
            True,
        )
        first = pc.WaitForUpdatesEx('', PC.WaitOptions(maxWaitSeconds=1))
        row = sim.set_datastore_space('nfs1', 1.5, capacity_gb=80)
        upd = pc.WaitForUpdatesEx(
            first.version, PC.WaitOptions(maxWaitSeconds=10)
        )
    finally:
        pc.Destroy()
    assert upd is not None, 'the watch did not wake'
    seen = {
        c.name: c.val
        for fs in upd.filterSet
        for o in fs.objectSet
        for c in o.changeSet
    }
    assert seen == {'summary.freeSpace': 3 * 2**29,
                    'info.freeSpace': 3 * 2**29}

    assert (row['name'], row['type'], row['datacenter']) == (
        'nfs1', 'NFS', 'DC0')
    assert (row['free_space'], row['capacity']) == (3 * 2**29, 80 * 2**30)
    assert (row['free_gb'], row['capacity_gb']) == (1.5, 80)
    assert row['changed'] == [nfs1._moId]
    s = nfs1.summary
    assert (s.freeSpace, s.capacity) == (3 * 2**29, 80 * 2**30)
    assert nfs1.info.freeSpace == 3 * 2**29
    assert nfs1.info.maxFileSize == 80 * 2**30
    listed = {d['name']: (d['free_gb'], d['capacity_gb'])
              for d in sim.list_datastores()}
    assert listed == {'nfs0': (100, 100), 'nfs1': (1.5, 80)}

    with pytest.raises(vcsim_harness.VcsimError,
                       match='HTTP 404: no datastore "nope"'):
        sim.set_datastore_space('nope', 1)
    with pytest.raises(vcsim_harness.VcsimError,
                       match='HTTP 400: free_gb 90 is more than the '
                             'capacity of nfs1'):
        sim.set_datastore_space('nfs1', 90)
    assert nfs1.summary.freeSpace == 3 * 2**29
