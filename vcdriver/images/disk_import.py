"""An image disk into vSphere through an NFC import lease.

The bytes go as a streamOptimized VMDK: only grains holding data cross
the wire, deflated, and ESX writes them into a thin disk, so a 40 GB disk
holding 12 GB costs 12 GB on the link and on the datastore. This is how
vSphere itself moves disks (ovftool, govc import.vmdk, the in-tree driver
for streamOptimized images); the datastore ``/folder`` endpoint only
takes whole files, zeros included.

An import lease writes the disks of a VM it creates (ImportVApp), never
loose files: the VM here is a shell whose one disk is the cache file and
whose own files go in an ``import/`` folder beside it. Once the disk is
in and verified the lease is completed, the shell unregistered and its
folder deleted; on any failure the lease is aborted, which has vCenter
delete the shell with its disk, and the shell is destroyed if it is
still there.
"""

from oslo_log import log as logging

from vcdriver import datastore_layout as layout
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver.vsphere import files
from vcdriver.vsphere import nfc
from vcdriver.vsphere import props
from vcdriver.vsphere import search_index

LOG = logging.getLogger(__name__)

SHELL_PREFIX = 'vcdriver-import-'


def shell_name(disk_path):
    """The shell VM's name, from the folder the disk is made in (a cache
    partial folder: unique per fill), so a service taking over a dead
    fill and the audit can find it."""
    folder = layout.parse(disk_path).parent
    return SHELL_PREFIX + folder.basename


def remove_shell(session, cluster, folder):
    """Destroy the shell VM left registered by an import into ``folder``
    whose service died mid-transfer (vCenter removes it only when the
    lease times out), before the folder holding its files goes."""
    found = search_index.find_child(session, cluster.vm_folder,
                                    SHELL_PREFIX + folder.basename)
    if found is not None:
        LOG.warning('Removing the import shell VM %s left by a dead image '
                    'download', props.moid(found))
        vm.destroy(session, found)


class DiskImport:
    """A sink for the transfer core: ``write`` chunks of a streamOptimized
    VMDK, ``close`` (the upload accepted), then ``commit`` once the image
    is verified; ``abort`` on any failure (idempotent)."""

    def __init__(self, session, cluster, host, disk_path, virtual_size,
                 adapter_type, progress, timeout=300):
        self.session = session
        self.cluster = cluster
        self.disk_path = disk_path
        self.home = layout.import_folder(disk_path)
        spec = vm_spec.import_spec(shell_name(disk_path), str(self.home),
                                   disk_path, virtual_size, adapter_type)
        self.lease = nfc.import_vapp(session, cluster.resource_pool,
                                     cluster.vm_folder, spec, host)
        self.shell = self.lease.entity
        self.virtual_size = virtual_size
        self._timeout = timeout
        self._writer = None
        self._keep_alive = None
        self._aborted = False
        try:
            urls = self.lease.disk_urls()
            if len(urls) != 1:
                raise nfc.ImportLeaseFailed(
                    lease=self.lease.name,
                    reason='it offers %d disk URLs, not 1' % len(urls))
            self._device_url = urls[0]
            self._keep_alive = self.lease.keep_alive(progress)
            self._keep_alive.__enter__()
        except BaseException:
            self.abort()
            raise
        LOG.debug('Import lease %s: shell VM %s for %s', self.lease.name,
                  props.moid(self.shell), disk_path)

    def write(self, data):
        self._open().write(data)

    def _open(self):
        """The upload, opened with its first chunk (a pull makes none)."""
        if self._writer is None:
            self._writer = nfc.DiskWriter(self.session, self._device_url.url,
                                          str(self.disk_path), self._timeout)
        return self._writer

    def pull(self, url, headers, size, thumbprint=None):
        """ESX GETs the streamOptimized VMDK at ``url`` into the disk
        itself; then what it wrote is checked against what Glance holds:
        ``size`` bytes received, a disk of the virtual size."""
        self.lease.pull(self._device_url, url, headers, size, thumbprint)
        entries = [e for e in self.lease.manifest() if e.disk]
        if len(entries) != 1:
            raise nfc.ImportLeaseFailed(
                lease=self.lease.name,
                reason='its manifest lists %d disks after the pull, not 1'
                       % len(entries))
        got, capacity = entries[0].size, entries[0].capacity
        if got != size or capacity and capacity != self.virtual_size:
            raise nfc.ImportLeaseFailed(
                lease=self.lease.name,
                reason='ESX received %s bytes making a disk of %s bytes; '
                       'Glance holds %d bytes of a %d-byte disk'
                       % (got, capacity, size, self.virtual_size))

    def close(self):
        """The body's end: raises unless ESX took the disk."""
        self._open().close()

    def commit(self):
        """Complete the lease; the disk stays, the shell goes."""
        try:
            self._stop_keep_alive()
            self.lease.complete()
        except BaseException:
            self.abort()
            raise
        vm.unregister(self.session, self.shell)
        files.delete(self.session, self.cluster.datacenter_ref, self.home)

    def abort(self):
        """Undo everything, once; never raises (it runs on error
        paths)."""
        if self._aborted:
            return
        self._aborted = True
        if self._writer is not None:
            self._writer.abort()
        self._stop_keep_alive()
        self.lease.abort()
        try:
            # Gone already when vCenter removed it with the lease.
            vm.destroy(self.session, self.shell)
        except Exception:
            LOG.warning('Could not remove the import shell VM %s',
                        props.moid(self.shell), exc_info=True)

    def _stop_keep_alive(self):
        keep_alive, self._keep_alive = self._keep_alive, None
        if keep_alive is not None:
            keep_alive.__exit__(None, None, None)
