"""Config drive: Nova's metadata as an ISO on a CD-ROM of the VM.

vCenter cannot inject files or keys into a guest, so this is how SSH keys,
user data and network data reach it (cloud-init reads the ``config-2``
ISO). The ISO is built by Nova's ConfigDriveBuilder (``[DEFAULT]
mkisofs_cmd``), uploaded to ``[ds] <instance uuid>/configdrive.iso`` and
so removed with the instance's folder.
"""

import os
import tempfile

from nova import exception as nova_exception
from nova.api.metadata import base as instance_metadata
from nova.virt import configdrive
from oslo_log import log as logging

from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import vm
from vcdriver.vsphere import datastore_http

LOG = logging.getLogger(__name__)
CONF = conf.CONF

CHUNK = 1024 * 1024


def required_by(instance):
    return configdrive.required_by(instance)


def attach(session, cluster, vm_ref, instance, folder, injected_files=None,
           admin_password=None, network_info=None):
    """Build the ISO, upload it into the instance's folder and attach it
    as a CD-ROM; returns its datastore path."""
    if CONF.config_drive_format != 'iso9660':
        raise nova_exception.ConfigDriveUnsupportedFormat(
            format=CONF.config_drive_format)
    extra_md = {'admin_pass': admin_password} if admin_password else {}
    metadata = instance_metadata.InstanceMetadata(
        instance, content=injected_files, extra_md=extra_md,
        network_info=network_info)
    path = layout.config_drive(folder)
    with tempfile.TemporaryDirectory(prefix='vcdriver-cd-') as tmp:
        iso = os.path.join(tmp, path.basename)
        with configdrive.ConfigDriveBuilder(instance_md=metadata) as builder:
            builder.make_drive(iso)
        _upload(session, cluster, iso, path)
    vm.attach_cdrom(session, vm_ref, path)
    LOG.info('Config drive %s attached', path, instance=instance)
    return path


def _upload(session, cluster, local, path):
    writer = datastore_http.FileWriter(
        session, cluster.datacenter, path.datastore, path.rel_path,
        size=os.path.getsize(local), timeout=CONF.vcdriver.http_timeout)
    try:
        with open(local, 'rb') as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.close()
