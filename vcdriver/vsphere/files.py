"""Datastore files and virtual disks through FileManager and
VirtualDiskManager. Paths are oslo.vmware ``DatastorePath`` objects."""

from oslo_log import log as logging
from oslo_utils import units
from pyVmomi import vim

LOG = logging.getLogger(__name__)


def make_directory(session, datacenter, path):
    try:
        session.content.fileManager.MakeDirectory(
            name=str(path), datacenter=datacenter,
            createParentDirectories=True)
    except vim.fault.FileAlreadyExists:
        pass


def delete(session, datacenter, path):
    """Delete a file or folder; one that is gone already is fine."""
    task = session.content.fileManager.DeleteDatastoreFile_Task(
        name=str(path), datacenter=datacenter)
    try:
        session.wait_for_task(task)
        LOG.debug('Deleted %s', path)
    except vim.fault.FileNotFound:
        LOG.debug('%s was gone already', path)


def create_virtual_disk(session, datacenter, path, size_bytes, adapter_type,
                        disk_type):
    """An empty disk (descriptor and extent) written by vCenter itself."""
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        capacityKb=(size_bytes + units.Ki - 1) // units.Ki,
        adapterType=adapter_type, diskType=disk_type)
    task = session.content.virtualDiskManager.CreateVirtualDisk_Task(
        name=str(path), datacenter=datacenter, spec=spec)
    session.wait_for_task(task)


def extend_virtual_disk(session, datacenter, path, size_bytes):
    task = session.content.virtualDiskManager.ExtendVirtualDisk_Task(
        name=str(path), datacenter=datacenter,
        newCapacityKb=size_bytes // units.Ki, eagerZero=False)
    session.wait_for_task(task)
