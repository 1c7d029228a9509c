"""An image into the datastore image cache, in one line:

    Glance (glance) -> its format opened (formats) -> hashed (glance.
    Download) -> written to vSphere (disk_import, or a flat PUT) ->
    published in the cache (cache)

``cached()`` is the one call spawn, rescue and pre-caching make. Where
no byte need cross this host, none does: vCenter copies an image Glance
keeps on one of its datastores (datastore_copy), or the ESX host pulls a
streamOptimized image from Glance itself (``[vcdriver] image_pull``).
"""

from concurrent import futures

from nova import exception as nova_exception
from oslo_log import log as logging

from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import vm_spec
from vcdriver.images import cache as image_cache
from vcdriver.images import datastore_copy
from vcdriver.images import disk_import
from vcdriver.images import formats
from vcdriver.images import glance
from vcdriver.images import transfer
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)
CONF = conf.CONF


def cached(session, context, cluster, image, plan, datastore_name):
    """The image's cache entry on the datastore, filled once (by whoever
    of all services and hosts gets there first) if it is not there."""
    cache = image_cache.DatastoreCache(session, cluster, datastore_name)
    return cache.ensure(
        image, lambda path: fill(session, context, cluster, image, plan,
                                 path),
        layout.cache_file_name(image.id, plan.iso))


def fill(session, context, cluster, image, plan, disk_path):
    """Write the image to ``disk_path``; return its virtual size in bytes.
    On failure the folder of ``disk_path`` may hold partial files: the
    caller (the cache) owns it and removes it."""
    source = datastore_copy.find_source(session, image)
    if source is not None:
        reason = datastore_copy.why_not_copyable(image, plan)
        if reason is None:
            return datastore_copy.copy_into(session, cluster, image, plan,
                                            source, disk_path)
        LOG.info('Image %s is on datastore %s, but %s: streaming it from '
                 'Glance', image.id, source.path.datastore, reason)
    if _pullable(image, plan, context):
        try:
            return _pull(session, context, cluster, image, plan, disk_path)
        except nova_exception.ImageUnacceptable:
            raise
        except Exception as e:
            LOG.warning('Image %s: ESX could not pull it from Glance (%s); '
                        'streaming it through this host instead', image.id,
                        e)
    return _stream(session, context, cluster, image, plan, disk_path)


def _stream(session, context, cluster, image, plan, disk_path):
    """Glance's bytes through this host: opened as their format says
    (images/formats), hashed as they pass (glance.Download), written to
    vSphere as streamOptimized grains through an import lease
    (disk_import) or, with ``[vcdriver] image_upload_method = flat``, as
    a flat extent PUT through vCenter; an ISO as it is. The disk is kept
    only if Glance's size and hash match."""
    source, flat = _open(context, image)
    stream = (not plan.iso and
              CONF.vcdriver.image_upload_method == 'stream_optimized')
    with futures.ThreadPoolExecutor(CONF.vcdriver.image_compress_threads,
                                    thread_name_prefix='deflate') as pool:
        try:
            state = _check_room(session, cluster, image, disk_path.datastore,
                                flat.virtual_size, thin=stream)
            if stream:
                target = disk_import.DiskImport(
                    session, cluster, _import_host(state), disk_path,
                    flat.virtual_size,
                    vm_spec.vmdk_adapter_type(plan.adapter),
                    progress=lambda: 100 * source.size // max(image.size, 1),
                    timeout=CONF.vcdriver.http_timeout)
                chunks = flat.stream_optimized(
                    level=CONF.vcdriver.image_deflate_level,
                    adapter_type=vm_spec.vmdk_adapter_type(plan.adapter),
                    compress_map=pool.map)
            else:
                target = _flat_writer(session, cluster, flat, plan,
                                      disk_path)
                chunks = flat
        except BaseException:
            source.close()
            raise
        try:
            result = transfer.copy(
                chunks, target.write, label='Image %s to %s' % (
                    image.id, disk_path), hash_algo=None,
                chunk_size=CONF.vcdriver.image_transfer_chunk_size,
                depth=CONF.vcdriver.image_transfer_buffer_chunks,
                expected_size=None if stream else flat.virtual_size,
                progress_interval=(
                    CONF.vcdriver.image_transfer_progress_interval))
            target.close()
            source.verify()
            if stream:
                target.commit()
        except transfer.SourceError as e:
            target.abort()
            if isinstance(e.__cause__, formats.ImageFormatError):
                raise _unacceptable(image, e.__cause__) from e
            raise source.broken_off(e) from e
        except BaseException:
            target.abort()
            raise
    LOG.info('Image %s verified (%s) on %s, %.1f MiB/s%s', image.id,
             image.hash_algo, disk_path, result.mib_per_s,
             ', %d of %d grains held data' % (
                 chunks.data_grains, chunks.data_grains + chunks.zero_grains)
             if stream else '')
    return flat.virtual_size


def _open(context, image):
    """(the Glance download, the disk its format holds); the header is
    read, nothing else."""
    source = glance.Download(context, image)
    try:
        flat = formats.open_flat(
            source, image.disk_format, image.container_format,
            vmware_disktype=image.properties.get('vmware_disktype'),
            chunk_size=CONF.vcdriver.image_transfer_chunk_size,
            source_size=image.size)
    except formats.ImageFormatError as e:
        source.close()
        raise _unacceptable(image, e) from e
    except Exception as e:
        # Glance's stream broke while the header was read: the same
        # failure as later in the copy (no other host would do better).
        source.close()
        raise source.broken_off(e) from e
    LOG.info('Image %s: %s, %d bytes, virtual size %d', image.id,
             flat.source_format, image.size, flat.virtual_size)
    return source, flat


def _pullable(image, plan, context):
    """Whether ESX may pull the image from Glance: a bare streamOptimized
    VMDK is what an import lease takes as it is ([vcdriver] image_pull)."""
    return (CONF.vcdriver.image_pull and not plan.iso and
            CONF.vcdriver.image_upload_method == 'stream_optimized' and
            image.disk_format == 'vmdk' and
            image.container_format in ('bare', None) and
            image.properties.get('vmware_disktype') == 'streamOptimized' and
            bool(context.auth_token))


def _pull(session, context, cluster, image, plan, disk_path):
    """The ESX host GETs the image from Glance into the disk itself; what
    it received is checked against Glance's size and virtual size (the
    bytes never reach us, so the hash cannot be)."""
    virtual_size = glance.virtual_size(context, image.id)
    if not virtual_size:
        raise ValueError('Glance recorded no virtual size for it')
    state = _check_room(session, cluster, image, disk_path.datastore,
                        virtual_size, thin=True)
    url = glance.data_url(context, image.id,
                          CONF.vcdriver.image_pull_glance_url)
    thumbprint = glance.tls_thumbprint(url, CONF.glance.cafile,
                                       CONF.glance.insecure)
    target = disk_import.DiskImport(
        session, cluster, _import_host(state), disk_path, virtual_size,
        vm_spec.vmdk_adapter_type(plan.adapter), progress=lambda: 50,
        timeout=CONF.vcdriver.http_timeout)
    try:
        target.pull(url, {'X-Auth-Token': context.auth_token}, image.size,
                    thumbprint)
        target.commit()
    except BaseException:
        target.abort()
        raise
    LOG.info('Image %s pulled from Glance by ESX into %s (%d bytes, '
             "virtual size %d): no byte through this host, Glance's hash "
             'not checked ([vcdriver] image_pull)', image.id, disk_path,
             image.size, virtual_size)
    return virtual_size


def _flat_writer(session, cluster, flat, plan, disk_path):
    """A PUT of the whole flat extent (or the ISO) through vCenter."""
    if plan.iso:
        target = disk_path.rel_path
    else:
        # The cache disk is thin: the flat upload replaces its extent.
        files.create_virtual_disk(session, cluster.datacenter_ref,
                                  disk_path, flat.virtual_size,
                                  vm_spec.vmdk_adapter_type(plan.adapter),
                                  'thin')
        target = layout.flat_extent(disk_path).rel_path
    return datastore_http.FileWriter(
        session, cluster.datacenter, disk_path.datastore, target,
        size=flat.virtual_size, timeout=CONF.vcdriver.http_timeout)


def _check_room(session, cluster, image, datastore_name, virtual_size,
                thin):
    """Refuse, before writing anything, a disk the datastore cannot hold;
    return the cluster's state. A flat extent is written in full,
    whatever its header claims; a thin disk needs room for its data
    (at least Glance's bytes) and cannot outgrow the datastore."""
    state = cluster_mod.read_state(session, [cluster])[0]
    for datastore in state.datastores:
        if datastore.name != datastore_name:
            continue
        if thin and virtual_size > datastore.capacity:
            why = ('its virtual size (%d bytes) is more than datastore %s '
                   'holds (%d bytes)' % (virtual_size, datastore_name,
                                         datastore.capacity))
        elif thin and image.size > datastore.free_space:
            why = ('its %d bytes are more than datastore %s has free (%d '
                   'bytes)' % (image.size, datastore_name,
                               datastore.free_space))
        elif not thin and virtual_size > datastore.free_space:
            why = ('its virtual size (%d bytes) is more than datastore %s '
                   'has free (%d bytes)' % (virtual_size, datastore_name,
                                            datastore.free_space))
        else:
            continue
        raise nova_exception.ImageUnacceptable(
            image_id=image.id,
            reason='%s; a header claiming it is wrong, or the image too '
                   'large to use' % why)
    return state


def _import_host(state):
    """The host whose ESX takes the import: any usable one (the shell VM
    never runs; a cluster without DRS needs one named)."""
    return next((h.ref for h in state.hosts if h.usable), None)


def _unacceptable(image, error):
    return nova_exception.ImageUnacceptable(image_id=image.id,
                                            reason=str(error))
