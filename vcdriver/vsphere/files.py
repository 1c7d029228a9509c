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


def make_directory_exclusive(session, datacenter, path):
    """Create a folder that must not exist yet; False if it does.

    Atomic on the datastore, so it serves as a lock shared by every
    process and host that sees the datastore.
    """
    try:
        session.content.fileManager.MakeDirectory(
            name=str(path), datacenter=datacenter,
            createParentDirectories=False)
        return True
    except vim.fault.FileAlreadyExists:
        return False


def move(session, datacenter, source, destination):
    """Rename a file or folder; fails if the destination exists."""
    task = session.content.fileManager.MoveDatastoreFile_Task(
        sourceName=str(source), sourceDatacenter=datacenter,
        destinationName=str(destination), destinationDatacenter=datacenter,
        force=False)
    session.wait_for_task(task)


def copy_virtual_disk(session, datacenter, source, destination,
                      adapter_type, disk_type):
    """A full copy of a disk, in the disk type asked for."""
    spec = vim.VirtualDiskManager.VirtualDiskSpec(
        adapterType=adapter_type, diskType=disk_type)
    task = session.content.virtualDiskManager.CopyVirtualDisk_Task(
        sourceName=str(source), sourceDatacenter=datacenter,
        destName=str(destination), destDatacenter=datacenter,
        destSpec=spec, force=False)
    session.wait_for_task(task)


def list_folder(session, datastore, path):
    """Names in a datastore folder (one level); empty if it is missing."""
    return list(folder_contents(session, datastore, path))


def folder_contents(session, datastore, path):
    """{name: when it last changed (seconds since the epoch, by the
    datastore; None if not said)} of a datastore folder, one level; empty
    if it is missing."""
    task = datastore.browser.SearchDatastore_Task(
        datastorePath=str(path),
        searchSpec=vim.host.DatastoreBrowser.SearchSpec(
            matchPattern=['*'],
            details=vim.host.DatastoreBrowser.FileInfo.Details(
                fileType=True, modification=True)))
    try:
        result = session.wait_for_task(task)
    except vim.fault.FileNotFound:
        return {}
    return {f.path: f.modification.timestamp() if f.modification else None
            for f in (result.file or ())}


def search_subfolders(session, browser, path, spec):
    """SearchDatastoreSubFolders_Task: what ``spec`` matches in ``path``
    and every folder below it, in one search; [HostDatastoreBrowser
    SearchResults], one per folder."""
    return session.wait_for_task(browser.SearchDatastoreSubFolders_Task(
        datastorePath=str(path), searchSpec=spec))


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


def move_virtual_disk(session, datacenter, source, destination):
    """Rename a disk (descriptor and extents); fails if the destination
    exists, so of two services making the same disk one wins."""
    task = session.content.virtualDiskManager.MoveVirtualDisk_Task(
        sourceName=str(source), sourceDatacenter=datacenter,
        destName=str(destination), destDatacenter=datacenter, force=False)
    session.wait_for_task(task)


def delete_virtual_disk(session, datacenter, path):
    """Delete a disk with its extents; one that is gone already is fine."""
    task = session.content.virtualDiskManager.DeleteVirtualDisk_Task(
        name=str(path), datacenter=datacenter)
    try:
        session.wait_for_task(task)
    except vim.fault.FileNotFound:
        LOG.debug('%s was gone already', path)


def copy_file(session, source_datacenter, source, datacenter, destination):
    """vCenter copies a file (any datastore, any datacenter), replacing
    the destination."""
    task = session.content.fileManager.CopyDatastoreFile_Task(
        sourceName=str(source), sourceDatacenter=source_datacenter,
        destinationName=str(destination), destinationDatacenter=datacenter,
        force=True)
    session.wait_for_task(task)
