"""Flavor extra specs and image properties that shape a VM: parsed and
checked, pure (plain dicts in, values out, no vSphere call).

The spec names are those Nova's extra-spec validator knows for VMware
(``nova/api/validation/extra_specs/quota.py`` and ``vmware.py``), the
image properties Glance's. Nova's API checks a spec's type only from
microversion 2.86, and never what a value means for vSphere: every value
that is invalid or impossible raises InvalidSpec naming it, so a build
or a resize fails before vCenter is asked for anything.
"""

import dataclasses
import re

from vcdriver import exception

# quota:<resource>_{limit,reservation,shares_level,shares_share}: vSphere's
# ResourceAllocationInfo of the VM (cpu in MHz, memory in MB), of each
# disk (disk_io, I/O per second) and of each NIC (vif, Mbps).
RESOURCES = ('cpu', 'memory', 'disk_io', 'vif')
# vim.SharesInfo.Level; custom takes its count from _shares_share.
SHARES_LEVELS = ('low', 'normal', 'high', 'custom')
HW_VERSION = re.compile(r'^vmx-(\d+)$')
# hw_firmware_type (Nova's FirmwareType) -> vim.vm.ConfigSpec.firmware.
FIRMWARE = {'bios': 'bios', 'uefi': 'efi'}
SECURE_BOOT = ('required', 'disabled', 'optional')
# vSphere sizes a VM's memory in multiples of 4 MB.
MEMORY_GRANULE_MB = 4


@dataclasses.dataclass(frozen=True)
class Allocation:
    """A ``quota:<resource>_*`` group as vSphere takes it: ``limit``
    None is unlimited (Nova's 0 or no spec), ``shares`` counts only for
    the ``custom`` level."""
    limit: int = None
    reservation: int = 0
    shares_level: str = 'normal'
    shares: int = 0


@dataclasses.dataclass(frozen=True)
class ExtraSpecs:
    """What the flavor and image ask of the VM (None: vSphere's
    default)."""
    cpu: Allocation = Allocation()
    memory: Allocation = Allocation()
    disk_io: Allocation = Allocation()
    vif: Allocation = Allocation()
    cores_per_socket: int = 1
    video_ram_kb: int = None
    hw_version: str = None
    guest_id: str = None
    firmware: str = None
    secure_boot: bool = None

    @property
    def tunes_devices(self):
        """Whether a device needs other than vSphere's defaults, which
        a new VM's devices have."""
        return (self.disk_io != Allocation() or self.vif != Allocation() or
                self.video_ram_kb is not None)


def _refuse(name, value, reason):
    raise exception.InvalidSpec(name=name, value=value, reason=reason)


def _int(values, name, minimum=0):
    value = values.get(name)
    if value is None or value == '':
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        _refuse(name, value, 'not an integer')
    if number < minimum:
        _refuse(name, value, 'below %d' % minimum)
    return number


def _allocation(specs, resource, memory_mb):
    key = 'quota:%s_' % resource
    limit = _int(specs, key + 'limit')
    reservation = _int(specs, key + 'reservation') or 0
    share = _int(specs, key + 'shares_share')
    level = specs.get(key + 'shares_level')
    if level is not None and level not in SHARES_LEVELS:
        _refuse(key + 'shares_level', level,
                'not a share level (%s)' % ', '.join(SHARES_LEVELS))
    if level == 'custom' and share is None:
        _refuse(key + 'shares_level', level,
                'needs the number of shares in %sshares_share' % key)
    if share is not None and level != 'custom':
        _refuse(key + 'shares_share', share,
                'counts only with %sshares_level=custom (it is %s)'
                % (key, level or 'unset'))
    if limit and reservation > limit:
        _refuse(key + 'reservation', reservation,
                'above %slimit=%d' % (key, limit))
    if resource == 'memory' and reservation > memory_mb:
        _refuse(key + 'reservation', reservation,
                "above the flavor's memory_mb=%d" % memory_mb)
    return Allocation(limit=limit or None, reservation=reservation,
                      shares_level=level or 'normal', shares=share or 0)


def _video_ram_kb(specs, image_properties):
    """The image's ``hw_video_ram`` (MB), which the flavor's
    ``hw_video:ram_max_mb`` must allow, as Nova's rule is."""
    wanted = _int(image_properties, 'hw_video_ram')
    most = _int(specs, 'hw_video:ram_max_mb') or 0
    if wanted and wanted > most:
        _refuse('hw_video_ram', wanted,
                "above the flavor's hw_video:ram_max_mb=%d" % most)
    return wanted * 1024 if wanted else None


def _firmware(image_properties):
    """(firmware, secure boot) from ``hw_firmware_type`` and
    ``os_secure_boot``; secure boot is EFI's, ``optional`` takes it where
    the firmware is EFI."""
    kind = image_properties.get('hw_firmware_type')
    if kind is not None and kind not in FIRMWARE:
        _refuse('hw_firmware_type', kind,
                'not a firmware type (%s)' % ', '.join(sorted(FIRMWARE)))
    firmware = FIRMWARE.get(kind)
    policy = image_properties.get('os_secure_boot')
    if policy is None:
        return firmware, None
    if policy not in SECURE_BOOT:
        _refuse('os_secure_boot', policy,
                'not a secure boot policy (%s)' % ', '.join(SECURE_BOOT))
    if policy == 'required' and firmware != 'efi':
        _refuse('os_secure_boot', policy,
                'secure boot needs hw_firmware_type=uefi (it is %s)'
                % (kind or 'unset'))
    return firmware, (policy != 'disabled') if firmware == 'efi' else None


def parse(specs, image_properties, memory_mb, cores_per_socket=1):
    """ExtraSpecs of a flavor (its ``extra_specs`` and ``memory_mb``)
    and an image's properties; ``cores_per_socket`` is the topology Nova
    computed from ``hw:cpu_*`` and ``hw_cpu_*``. Raises InvalidSpec."""
    specs, image_properties = specs or {}, image_properties or {}
    if memory_mb % MEMORY_GRANULE_MB:
        _refuse('memory_mb', memory_mb, 'vSphere needs a multiple of %d MB'
                % MEMORY_GRANULE_MB)
    hw_version = specs.get('vmware:hw_version')
    if hw_version is not None and not HW_VERSION.match(hw_version):
        _refuse('vmware:hw_version', hw_version,
                'not a vSphere hardware version (vmx-<number>)')
    firmware, secure_boot = _firmware(image_properties)
    return ExtraSpecs(
        **{r: _allocation(specs, r, memory_mb) for r in RESOURCES},
        cores_per_socket=cores_per_socket,
        video_ram_kb=_video_ram_kb(specs, image_properties),
        hw_version=hw_version,
        guest_id=image_properties.get('vmware_ostype') or None,
        firmware=firmware, secure_boot=secure_boot)


def version_number(hw_version):
    """13 for ``vmx-13``; 0 for None."""
    return int(HW_VERSION.match(hw_version).group(1)) if hw_version else 0


def check_cluster(specs, vcpus, host_cpu_mhz, runnable_versions):
    """Refuse what the cluster's hosts cannot give: a hardware version
    none of them runs (``runnable_versions``, the keys of vCenter's
    config option descriptors) or a CPU reservation above the flavor's
    vCPUs on the fastest host (``host_cpu_mhz``, per core)."""
    if specs.hw_version and specs.hw_version not in runnable_versions:
        _refuse('vmware:hw_version', specs.hw_version,
                'no host of the cluster runs it (they run up to %s)'
                % max(runnable_versions, key=version_number,
                      default='none'))
    most = vcpus * max(host_cpu_mhz, default=0)
    if specs.cpu.reservation > most:
        _refuse('quota:cpu_reservation', specs.cpu.reservation,
                "above the flavor's %d vCPU at %d MHz, the cluster's "
                'fastest host' % (vcpus, max(host_cpu_mhz, default=0)))


def check_upgrade(specs, vm_version):
    """A VM's hardware can be upgraded, never downgraded."""
    if specs.hw_version and (version_number(specs.hw_version) <
                             version_number(vm_version)):
        _refuse('vmware:hw_version', specs.hw_version,
                "below the VM's hardware version %s: vSphere cannot "
                'downgrade a VM' % vm_version)
