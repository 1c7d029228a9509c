"""Methods of vCenter's SearchIndex: objects found by uuid, name or
inventory path, or None."""


def find_vm_by_instance_uuid(session, uuid):
    """FindByUuid over all datacenters: the VM whose instanceUuid is
    ``uuid``."""
    return session.content.searchIndex.FindByUuid(
        None, uuid, vmSearch=True, instanceUuid=True)


def find_child(session, entity, name):
    """FindChild: the direct child of ``entity`` named ``name``."""
    return session.content.searchIndex.FindChild(entity, name)


def find_by_inventory_path(session, path):
    """FindByInventoryPath: ``datacenter/vm/...`` and the like."""
    return session.content.searchIndex.FindByInventoryPath(path)
