"""What the stack's vCenter (the launcher) holds, read with pyVmomi: the
oracle the stack tests hold Nova's answers against."""

import time
import types

from pyVmomi import vim
from pyVmomi import vmodl

from tests.harness import vcsim as vcsim_harness

CACHE_FOLDER = 'vcdriver_image_cache'   # [vcdriver] image_cache_folder


def connect(stack):
    """The stack's vCenter, logged in with pyVmomi."""
    s = stack.stack
    info = s.state['vcsim']
    return vcsim_harness.connect(types.SimpleNamespace(
        host=info['host'], port=info['port'], url=info['url'],
        username='vcsim', password=s.secret('vcsim')))


def control(stack):
    """The launcher's fault and statistics endpoints."""
    info = stack.stack.state['vcsim']
    return vcsim_harness.Control(info['url'], info['host'], info['port'])


def _view(si, kind):
    return si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [kind], True).view


def clusters_by_node(stack, si):
    """vCenter's clusters by the node name each should be in Nova:
    ``<cluster moref>.<vCenter instanceUuid>``."""
    uuid = stack.stack.vcenter_uuid()
    return {'%s.%s' % (c._moId, uuid): c
            for c in _view(si, vim.ClusterComputeResource)}


def vm_of(si, server_id):
    """The VM of a server (by instanceUuid), or None."""
    return si.content.searchIndex.FindByUuid(None, server_id, True, True)


def instance_vms(si):
    """Every VM carrying Nova's instance marker."""
    return [v for v in _view(si, vim.VirtualMachine)
            if any(o.key == 'nvp.vm-uuid'
                   for o in (v.config.extraConfig or ()))]


def datastore_of(vm):
    """The datastore of a VM's configuration file."""
    return vm.config.files.vmPathName.split(']', 1)[0].lstrip('[')


def cache_files(si, image_id):
    """``(datastore, name)`` of every entry in the image caches whose name
    begins with ``image_id``: its folder, and any lock, partial download
    or stale lock left beside it."""
    found = []
    for ds in _view(si, vim.Datastore):
        spec = vim.host.DatastoreBrowser.SearchSpec(
            matchPattern=[image_id + '*'])
        task = ds.browser.SearchDatastore_Task(
            datastorePath='[%s] %s' % (ds.name, CACHE_FOLDER),
            searchSpec=spec)
        try:
            result = wait_for_task(si, task)
        except vim.fault.FileNotFound:
            continue
        found += [(ds.name, f.path) for f in result.file]
    return sorted(found)


def wait_for_task(si, task, timeout=120):
    """A task's result, or its fault raised, woken by vCenter's updates
    of ``info.state``. Not pyVim's WaitForTask: while a task runs it reads
    ``info.name.info.name``, which fails on a method name pyVmomi does not
    know (vcsim's datastore browser tasks)."""
    pc = si.content.propertyCollector
    filter_spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(
            type=vim.Task, pathSet=['info.state'])])
    pc_filter = pc.CreateFilter(filter_spec, True)
    deadline = time.monotonic() + timeout
    try:
        version = ''
        while task.info.state not in ('success', 'error'):
            if time.monotonic() > deadline:
                raise TimeoutError('task %s still %s after %d s'
                                   % (task._moId, task.info.state, timeout))
            update = pc.WaitForUpdatesEx(
                version, vmodl.query.PropertyCollector.WaitOptions(
                    maxWaitSeconds=10))
            if update is not None:
                version = update.version
    finally:
        pc_filter.Destroy()
    if task.info.state == 'error':
        raise task.info.error
    return task.info.result


def datastores_caching(si, image_id):
    """Names of the datastores whose image cache holds ``image_id``."""
    return sorted(ds for ds, name in cache_files(si, image_id)
                  if name == image_id)


def vm_names(si):
    """Every VM's name (instances, import shells, anything)."""
    return sorted(v.name for v in _view(si, vim.VirtualMachine))


def powered_on_events(si, vm):
    """How often vCenter's events say ``vm`` was powered on."""
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm,
                                                  recursion='self'),
        eventTypeId=['VmPoweredOnEvent'])
    return len(si.content.eventManager.QueryEvents(spec))


def wait_rule(ctl, rule_id, key, timeout=300):
    """Until the launcher's rule ``rule_id`` has ``key`` >= 1."""
    deadline = time.monotonic() + timeout
    while True:
        rule = next(r for r in ctl.faults() if r['id'] == rule_id)
        if rule.get(key, 0) >= 1:
            return
        assert time.monotonic() < deadline, 'fault never fired: %s' % rule
        time.sleep(0.2)
