"""The worker's side: one case in one fresh process.

``python -m tools.bench.image_transfer worker SPEC_JSON`` (started by
tools/bench/worker.py for bench.py) reaches ``worker_main``, which runs
the WORKERS function the spec's case names and prints its measurement.
Nova, oslo.vmware and vcdriver are imported inside these functions, so
only in the worker process.
"""

import json
import re
import subprocess
import time
import urllib.parse

from tools.bench import measure
from tools.bench import worker
from tools.bench.image_transfer.naming import MiB


def _datastore_url(spec):
    query = urllib.parse.urlencode({'dcPath': spec['dc'],
                                    'dsName': spec['ds']})
    return 'https://%s:%d/folder/%s?%s' % (
        spec['vc_host'], spec['vc_port'],
        urllib.parse.quote('%s/%s' % (spec['folder'], spec['name'])), query)


def _worker_raw(spec):
    get = ['curl', '-sS', '-f', '-H', 'X-Auth-Token: bench',
           '%s/v2/images/%s/file' % (spec['glance'], spec['image_id'])]
    put = ['curl', '-sS', '-f', '-k', '-T', '-', '-o', '/dev/null',
           '-H', 'Content-Type: application/octet-stream',
           _datastore_url(spec)]
    m = measure.Measurement(self_cpu=False, children=True).start()
    reader = subprocess.Popen(get, stdout=subprocess.PIPE)
    writer = subprocess.Popen(put, stdin=reader.stdout)
    reader.stdout.close()
    codes = (writer.wait(), reader.wait())
    result = m.stop()
    if any(codes):
        raise RuntimeError('curl | curl failed: exit codes %s' % (codes,))
    return result


def _nova_setup(spec):
    """Nova's CONF and a context, as nova-compute in threading mode."""
    import oslo_service.backend as service_backend
    service_backend.init_backend(service_backend.BackendType.THREADING)
    import nova.conf
    from nova import context as nova_context
    from nova import objects

    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    conf.set_override('api_servers', [spec['glance']], group='glance')
    objects.register_all()
    ctx = nova_context.RequestContext(user_id='bench', project_id='bench',
                                      auth_token='bench-token')
    return conf, ctx


def _worker_intree(spec):
    conf, ctx = _nova_setup(spec)
    from nova import objects
    from nova.virt.vmwareapi import images
    from oslo_utils import uuidutils
    from pyVim.connect import SmartConnect

    si = SmartConnect(host=spec['vc_host'], port=spec['vc_port'],
                      user=spec['user'], pwd=spec['password'],
                      disableSslCertValidation=True)
    cookies = si._stub.cookie
    instance = objects.Instance(uuid=uuidutils.generate_uuid(),
                                image_ref=spec['image_id'])
    m = measure.Measurement().start()
    images.fetch_image(ctx, instance, spec['vc_host'], spec['vc_port'],
                       spec['dc'], spec['ds'],
                       '%s/%s' % (spec['folder'], spec['name']),
                       cookies=cookies)
    return m.stop()


def _worker_ours(spec):
    conf, ctx = _nova_setup(spec)
    from oslo_vmware.objects import datastore as ds_obj

    from vcdriver import cluster as cluster_mod
    from vcdriver.images import disk
    from vcdriver.images import glance
    from vcdriver.images import pipeline
    from vcdriver.vsphere import session as session_mod

    for key, value in (spec.get('conf') or {}).items():
        conf.set_override(key, value, group='vcdriver')
    session = session_mod.Session(spec['vc_host'], spec['vc_port'],
                                  spec['user'], spec['password'],
                                  protocol='https', insecure=True)
    session.connect()
    target = cluster_mod.resolve(session, [spec['cluster']])[0]
    path = ds_obj.DatastorePath(spec['ds'], spec['folder'], spec['name'])
    m = measure.Measurement().start()
    image = glance.get(ctx, spec['image_id'])
    pipeline.fill(session, ctx, target, image,
                  disk.check_acceptable(image), path)
    result = m.stop()
    session.logout()
    return result


def _count_writes(cls, counter):
    """Count what goes through ``cls.write`` in ``counter[0]`` (bytes):
    the body of a flat PUT, which the launcher does not count."""
    write = cls.write

    def counting_write(self, data):
        counter[0] += len(data)
        return write(self, data)
    cls.write = counting_write


def _worker_cached(spec):
    """ours, to a cached disk as spawn has one: ``pipeline.cached`` (the
    cache's lock and partial folder, ``fill``, publication)."""
    conf, ctx = _nova_setup(spec)
    from vcdriver import cluster as cluster_mod
    from vcdriver.images import disk
    from vcdriver.images import glance
    from vcdriver.images import pipeline
    from vcdriver.vsphere import datastore_http
    from vcdriver.vsphere import session as session_mod

    for key, value in (spec.get('conf') or {}).items():
        conf.set_override(key, value, group='vcdriver')
    put = [0]
    _count_writes(datastore_http.FileWriter, put)
    session = session_mod.Session(spec['vc_host'], spec['vc_port'],
                                  spec['user'], spec['password'],
                                  protocol='https', insecure=True)
    session.connect()
    target = cluster_mod.resolve(session, [spec['cluster']])[0]
    m = measure.Measurement().start()
    image = glance.get(ctx, spec['image_id'])
    entry = pipeline.cached(session, ctx, target, image,
                            disk.check_acceptable(image), spec['ds'])
    result = m.stop()
    session.logout()
    result.update(disk=str(entry.disk), put_bytes=put[0])
    return result


def _worker_intree_spawn(spec):
    """The in-tree driver to a cached disk as its spawn has one:
    ``VMwareVMOps._fetch_image_if_missing`` (prepare, fetch, cache) for
    the image as spawn sees it; or why it cannot run here."""
    conf, ctx = _nova_setup(spec)
    from tools.bench import intree

    for key, value in (('host_ip', spec['vc_host']),
                       ('host_port', spec['vc_port']),
                       ('host_username', spec['user']),
                       ('host_password', spec['password']),
                       ('insecure', True),
                       ('cluster_name', spec['cluster']),
                       ('datastore_regex', '^%s$' % re.escape(spec['ds']))):
        conf.set_override(key, value, group='vmware')
    try:
        with intree.driver(conf, spec['soap_url']) as drv:
            return _intree_fetch(spec, ctx, drv)
    except intree.Unavailable as e:
        return {'skipped': str(e)}


def _intree_fetch(spec, ctx, drv):
    from nova import objects
    from nova.virt.vmwareapi import images
    from nova.virt.vmwareapi import vm_util
    from nova.virt.vmwareapi import vmops
    from oslo_utils import uuidutils
    from oslo_vmware import rw_handles

    def no_esx_ticket(self, *args, **kwargs):
        # Its PUT would go to the ESX host by name (DC0_C0_H0 ...), which
        # vcsim's hosts have no address for; on failure here the in-tree
        # driver PUTs through vCenter, as it does when no ticket is had.
        raise RuntimeError('bench: vcsim hosts have no address')

    vmops.VMwareVMOps._get_esx_host_and_cookies = no_esx_ticket
    # It sends CreateVirtualDisk_Task's capacityKb as file_size / 1024, a
    # float ("1048576.0"): vCenter takes it, vcsim's decoder does not.
    images.VMwareImage.file_size_in_kb = property(
        lambda self: int(self.file_size) // 1024)
    vmdk_close = rw_handles.VmdkWriteHandle.close

    def close_after_response(self):
        # It completes the lease without reading its PUT's response; the
        # launcher ends a transfer still in flight at HttpNfcLeaseComplete
        # (the disk comes out short), so the response is read first.
        try:
            self._conn.getresponse().read()
        except Exception:
            pass    # as its FileWriteHandle.close: logged by no one
        return vmdk_close(self)
    rw_handles.VmdkWriteHandle.close = close_after_response
    put = [0]
    _count_writes(rw_handles.FileWriteHandle, put)
    copying = []
    copy_virtual_disk = vm_util.copy_virtual_disk

    def timed_copy(*args, **kwargs):
        copying.append(time.perf_counter())
        return copy_virtual_disk(*args, **kwargs)
    vm_util.copy_virtual_disk = timed_copy

    instance = objects.Instance(uuid=uuidutils.generate_uuid(),
                                image_ref=spec['image_id'],
                                flavor=objects.Flavor(root_gb=0))
    m = measure.Measurement().start()
    try:
        meta = images.IMAGE_API.get(ctx, spec['image_id'])
        if spec.get('declare'):
            # Raw bytes as an in-tree operator registers them: a flat VMDK
            # (the in-tree driver refuses disk_format raw).
            meta['disk_format'] = 'vmdk'
            meta.setdefault('properties', {})['vmware_disktype'] = \
                spec['declare']
        image_meta = objects.ImageMeta.from_dict(meta)
        image_info = images.VMwareImage.from_image(ctx, spec['image_id'],
                                                   image_meta)
        vi = drv._vmops._get_vm_config_info(instance, image_info,
                                            vm_util.ExtraSpecs())
        drv._vmops._fetch_image_if_missing(ctx, vi)
    except Exception as e:
        why = '%s: %s' % (type(e).__name__, ' '.join(str(e).split())[:240])
        if copying:
            return {'skipped': 'its PUT of the %.0f MiB file took %.1f s, '
                               'then CopyVirtualDisk_Task failed (%s)'
                               % (put[0] / MiB, copying[0] - m._t0, why)}
        return {'skipped': 'it failed: %s' % why}
    result = m.stop()
    result.update(disk=str(vi.cache_image_path), put_bytes=put[0])
    return result


WORKERS = {'raw': _worker_raw, 'intree': _worker_intree,
           'ours': _worker_ours, 'cached': _worker_cached,
           'intree_spawn': _worker_intree_spawn}


def worker_main(spec_json):
    worker.setup_logging()
    spec = json.loads(spec_json)
    result = WORKERS[spec['case']](spec)
    if 'skipped' not in result:
        result.update(measure.rates(spec['size'], result))
    return worker.emit(result)
