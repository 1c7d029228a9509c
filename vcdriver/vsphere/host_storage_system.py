"""Methods of a host's HostStorageSystem (``configManager.storageSystem``):
its iSCSI adapter's targets and rescans."""


def add_iscsi_static_targets(session, storage_system, hba_device, targets):
    """AddInternetScsiStaticTargets on the adapter ``hba_device``."""
    storage_system.AddInternetScsiStaticTargets(iScsiHbaDevice=hba_device,
                                                targets=targets)


def rescan_hba(session, storage_system, hba_device):
    """RescanHba: the host sees LUNs added, removed or grown."""
    storage_system.RescanHba(hbaDevice=hba_device)
