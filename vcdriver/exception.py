"""Errors the driver raises, named for what an operator has to fix."""

from nova import exception as nova_exception


class VCenterError(nova_exception.NovaException):
    msg_fmt = 'vCenter error: %(reason)s'


class VCenterUnreachable(VCenterError):
    msg_fmt = ('Cannot reach vCenter at %(url)s: %(reason)s. Check [vmware] '
               'host_ip, host_port and [vcdriver] vcenter_protocol.')


class VCenterAuthFailed(VCenterError):
    msg_fmt = ('vCenter at %(url)s refused the login of user %(user)s: '
               '%(reason)s. Check [vmware] host_username and [vmware] '
               'host_password.')


class VCenterTLSFailed(VCenterError):
    msg_fmt = ('TLS verification of vCenter at %(url)s failed: %(reason)s. '
               'Check [vmware] ca_file (or set [vmware] insecure).')


class ClusterNotFound(VCenterError):
    msg_fmt = ('Cluster %(cluster)s was not found in vCenter %(url)s '
               '(clusters there: %(known)s). Check [vmware] cluster_name and '
               '[vcdriver] cluster_names.')


class AmbiguousCluster(VCenterError):
    msg_fmt = ('Cluster name %(cluster)s exists in several datacenters '
               '(%(datacenters)s): name it as <datacenter>/%(cluster)s in '
               '[vmware] cluster_name or [vcdriver] cluster_names.')


class InvalidConfig(nova_exception.InvalidInput):
    msg_fmt = 'Invalid configuration: %(reason)s'


class InvalidSpec(nova_exception.InvalidInput):
    """A flavor extra spec or image property vSphere cannot honour: Nova
    aborts the build (no reschedule) or rolls the resize back."""

    msg_fmt = '%(name)s=%(value)s: %(reason)s'


class TaskFailed(VCenterError):
    msg_fmt = 'vCenter task %(task)s failed: %(reason)s'


class TaskTimeout(VCenterError):
    msg_fmt = ('vCenter task %(task)s did not finish within %(timeout)s s '
               '([vcdriver] task_timeout).')

    def __init__(self, message=None, task_ref=None, **kwargs):
        # The vim.Task itself: a caller may have to follow it further (a
        # VM made after the wait gave up is nobody's).
        self.task_ref = task_ref
        super().__init__(message, **kwargs)


class NoUsableDatastore(nova_exception.ComputeResourcesUnavailable):
    """Nova tries another host."""

    msg_fmt = ('Cluster %(cluster)s has no usable datastore (accessible, '
               'not in maintenance, type VMFS/NFS/NFS41/vsan/vvol, matching '
               '[vmware] datastore_regex %(regex)s) with %(needed_gb)s GB '
               'free.')


class NoUsableDatastoreForPolicy(NoUsableDatastore):
    msg_fmt = ('Cluster %(cluster)s has no usable datastore (accessible, '
               'not in maintenance, matching [vmware] datastore_regex '
               '%(regex)s) with %(needed_gb)s GB free among those that '
               'satisfy storage policy %(policy)s (%(datastores)s).')


class ImageTransferFailed(nova_exception.ImageUnacceptable):
    msg_fmt = 'Image %(image_id)s could not be transferred: %(reason)s'


class ImageChecksumMismatch(ImageTransferFailed):
    msg_fmt = ('Image %(image_id)s is corrupt: its %(algo)s is %(actual)s '
               'but Glance recorded %(expected)s. Nothing was kept on the '
               'datastore.')


class ImageCacheTimeout(VCenterError):
    msg_fmt = ('Gave up waiting for %(owner)s to cache image %(image_id)s '
               'on datastore %(datastore)s ([vcdriver] '
               'image_cache_wait_timeout).')


class DatastoreHTTPError(VCenterError):
    msg_fmt = 'Datastore HTTP %(method)s %(path)s failed: %(reason)s'


class DatastoreFull(nova_exception.ComputeResourcesUnavailable):
    """The datastore ran out of room during an upload (HTTP 507): Nova
    should try elsewhere, as when vCenter refuses a VM for NoDiskSpace."""
    msg_fmt = ('The datastore filled up while %(path)s was written: '
               '%(reason)s')


class NoFreeDiskSlot(VCenterError):
    msg_fmt = ('The VM has no free %(bus)s slot left for another disk or '
               'CD-ROM (hw_disk_bus: IDE takes four devices in all).')


class DrsRuleRejected(nova_exception.BuildAbortException):
    """A BuildAbortException, so Nova puts the server in ERROR with this
    message rather than rescheduling it."""
    msg_fmt = ('vCenter refused the DRS rule of server group %(group)s '
               '(policy %(policy)s) in cluster %(cluster)s: %(reason)s')


class VolumeBackingNotFound(nova_exception.VolumeNotFound):
    msg_fmt = ('Volume %(volume_id)s has no backing in vCenter: neither '
               'the VM %(moref)s named in its connection info nor a VM with '
               'instanceUuid %(volume_id)s exists, or it holds no disk.')


class VolumeHotplugUnsupported(nova_exception.Invalid):
    msg_fmt = ('Volume %(volume_id)s cannot be %(action)s while the server '
               'runs: its disks are on IDE, which has no hot-plug. Stop '
               'the server first.')


class ISCSITargetNotFound(VCenterError):
    msg_fmt = ('Host %(host)s found no LUN %(lun)s of iSCSI target %(iqn)s '
               'at %(portal)s after adding it as a static target of its '
               'software iSCSI adapter and rescanning%(reason)s.')


class ISCSIVolumeNeedsSCSI(nova_exception.Invalid):
    msg_fmt = ('iSCSI volume %(volume_id)s is attached as a physical raw '
               'device mapping, which needs a SCSI controller; this '
               "server's disks are on %(bus)s.")


class VMHasNoHost(VCenterError):
    msg_fmt = 'VM %(moref)s runs on no host: is it registered and on?'


class NoFreeVNCPort(VCenterError):
    msg_fmt = ('Every VNC port from %(first)d to %(last)d is taken on host '
               '%(host)s: raise [vmware] vnc_port_total (ESX opens '
               '5900-6105) or spread the VMs.')
