"""Configuration: Nova's own ``[vmware]`` options plus a ``[vcdriver]`` group.

The ``[vmware]`` options are the ones ``nova.virt.vmwareapi`` registers; we
reuse Nova's definitions (registering look-alikes would clash in Nova's
``CONF``) so an operator switching drivers keeps the same nova.conf.
"""

import re

from nova.conf import vmware as nova_vmware_conf
from oslo_config import cfg

from vcdriver import datastore_layout
from vcdriver import exception

CONF = cfg.CONF

# The [vmware] options this driver honours, with their upstream meaning.
# Not task_poll_interval: tasks are waited for by property updates from
# vCenter (WaitForUpdatesEx), never by polling. Not pbm_wsdl_location:
# pyVmomi has PBM's types built in, no WSDL is read (accepted, unused).
VMWARE_OPTS_HONOURED = (
    'host_ip', 'host_port', 'host_username', 'host_password', 'ca_file',
    'insecure', 'cluster_name', 'datastore_regex', 'api_retry_count',
    'connection_pool_size', 'maximum_objects', 'use_linked_clone',
    'vnc_port', 'vnc_port_total', 'serial_port_service_uri',
    'serial_port_proxy_uri', 'serial_log_dir', 'pbm_enabled',
    'pbm_default_policy',
)

vcdriver_group = cfg.OptGroup(
    'vcdriver',
    title='vcdriver options',
    help='Options of the vcdriver VMware vCenter driver that the in-tree '
         'driver does not have. The [vmware] group keeps its meaning.')

vcdriver_opts = [
    cfg.ListOpt('cluster_names',
                default=[],
                help='vCenter clusters served by this nova-compute, each as '
                     'a Nova node (hypervisor) of its own. Added to '
                     '[vmware] cluster_name when both are set.'),
    cfg.StrOpt('vcenter_protocol',
               default='https',
               choices=[('https', 'TLS, verified unless [vmware] insecure'),
                        ('http', 'plain HTTP; only for simulators in tests')],
               help='Protocol of the vCenter SDK and datastore endpoints.'),
    cfg.IntOpt('task_timeout',
               default=3600,
               min=1,
               help='Seconds to wait for one vCenter task before giving up '
                    'on it.'),
    cfg.IntOpt('image_transfer_chunk_size',
               default=64 * 1024,
               min=4096,
               help='Bytes read from Glance and written to the datastore per '
                    'chunk in the image transfer pipeline. 64 KiB keeps '
                    'the upload socket fed in small steps: 1 MiB chunks '
                    'sent in bursts ran 5% below the in-tree driver on a '
                    '1 Gbit/s link, and held twice the memory.'),
    cfg.IntOpt('image_transfer_buffer_chunks',
               default=16,
               min=1,
               help='Chunks buffered between the Glance reader and the '
                    'datastore writer; memory used per transfer is about '
                    'this times image_transfer_chunk_size.'),
    cfg.StrOpt('image_upload_method',
               default='stream_optimized',
               choices=[('stream_optimized',
                         'the disk goes to ESX as a streamOptimized VMDK '
                         'through an NFC import lease (ImportVApp): only '
                         'grains holding data cross the link, deflated, '
                         'and the cached disk is thin. Needs the '
                         'nova-compute host to reach the ESX hosts on 443 '
                         '(as the in-tree driver does for streamOptimized '
                         'images).'),
                        ('flat',
                         'the whole flat extent, zeros included, with one '
                         "PUT through vCenter's datastore /folder "
                         'endpoint; the cached disk is as large as the '
                         'virtual size. For sites where only vCenter is '
                         'reachable.')],
               help='How image disks are written into the datastore image '
                    'cache. ISO images are always copied as they are '
                    "through vCenter's datastore endpoint."),
    cfg.IntOpt('image_deflate_level',
               default=1,
               min=0,
               max=9,
               help='Deflate level of the grains sent with '
                    'image_upload_method = stream_optimized (0: stored, no '
                    "compression; 9: smallest). Levels 1 to 3 are ISA-L's "
                    '(PyPI isal, several times faster than zlib at a like '
                    "ratio) where it is installed, the others zlib's."),
    cfg.IntOpt('image_compress_threads',
               default=2,
               min=1,
               help='Threads deflating grains for image_upload_method = '
                    'stream_optimized, per image transfer (zlib runs '
                    'outside the GIL, so native threads compress in '
                    'parallel; under eventlet they take turns).'),
    cfg.BoolOpt('image_pull',
                default=False,
                help='Have the ESX host pull streamOptimized VMDK images '
                     '(disk_format=vmdk, vmware_disktype=streamOptimized, '
                     'container_format bare) from Glance itself '
                     '(HttpNfcLeasePullFromUrls, vSphere 6.7 and later): '
                     'no image byte passes through nova-compute. The ESX '
                     'hosts must reach Glance at image_pull_glance_url, '
                     "and the request carries the user's Keystone token "
                     "(X-Auth-Token); an https Glance's certificate is "
                     'verified by nova-compute ([glance] cafile) and given '
                     'to ESX as its thumbprint. nova-compute never sees '
                     'the bytes, '
                     "so Glance's hash is not checked in this mode: ESX "
                     'must have received exactly the bytes Glance '
                     'records, making a disk of the virtual size Glance '
                     'records, and ESX checks each grain as it decodes it. '
                     'Any failure falls back to streaming the image '
                     'through nova-compute (image_upload_method).'),
    cfg.StrOpt('image_pull_glance_url',
               help="Glance's endpoint as the ESX hosts reach it, e.g. "
                    'https://glance.example.org:9292, for image_pull; '
                    'default: the endpoint nova-compute uses ([glance] '
                    'api_servers, else the service catalog).'),
    cfg.IntOpt('image_transfer_progress_interval',
               default=10,
               min=0,
               help='Seconds between progress log lines of an image '
                    'transfer (0 disables them).'),
    cfg.StrOpt('image_cache_folder',
               default=datastore_layout.DEFAULT_CACHE_FOLDER,
               help='Folder on each datastore that holds the image cache. '
                    'It is shared by every nova-compute and cluster that '
                    'sees the datastore, so set it alike on all of them.'),
    cfg.IntOpt('image_cache_lock_stale_seconds',
               default=120,
               min=3,
               help='A compute service filling the image cache refreshes '
                    'its lock a third of this often; a lock not refreshed '
                    'for this long is taken over, as its owner died.'),
    cfg.IntOpt('image_cache_wait_timeout',
               default=3600,
               min=1,
               help='Seconds a spawn waits for another compute service to '
                    'finish caching the image it needs.'),
    cfg.IntOpt('http_timeout',
               default=300,
               min=1,
               help='Socket timeout in seconds for datastore HTTP transfers.'),
    cfg.IntOpt('drs_rule_repair_interval',
               default=600,
               min=0,
               help='Seconds between passes that make the DRS VM-VM rules '
                    'of server groups (nova-servergroup-<group uuid>) in '
                    "each cluster match Nova's groups again, undoing "
                    'changes made in vCenter by hand. Passes run within '
                    'the resource update periodic ([DEFAULT] '
                    'update_resources_interval), so they come no more '
                    'often than it does; 0 disables them.'),
    cfg.IntOpt('soft_reboot_timeout',
               default=120,
               min=1,
               help='Seconds a soft reboot (RebootGuest through VMware '
                    'Tools) waits for the guest to go down to reboot '
                    'before resetting the VM instead.'),
]


def register_opts(conf=CONF):
    """Register the [vcdriver] group; Nova has registered [vmware] already."""
    nova_vmware_conf.register_opts(conf)
    conf.register_group(vcdriver_group)
    conf.register_opts(vcdriver_opts, group=vcdriver_group)


def _honoured_vmware_opts():
    opts = []
    for _group, group_opts in nova_vmware_conf.list_opts().items():
        opts.extend(o for o in group_opts if o.name in VMWARE_OPTS_HONOURED)
    return sorted(opts, key=lambda o: VMWARE_OPTS_HONOURED.index(o.name))


def list_opts():
    """Entry point for oslo-config-generator (namespace ``vcdriver``)."""
    return [('vmware', _honoured_vmware_opts()),
            (vcdriver_group, vcdriver_opts)]


def cluster_names(conf=CONF):
    """Every configured cluster, in order, without duplicates."""
    names = []
    for name in [conf.vmware.cluster_name] + list(conf.vcdriver.cluster_names):
        if name and name not in names:
            names.append(name)
    return names


def _value_error(error):
    """oslo.config's reason, and the file, without its LocationInfo."""
    text = str(error)
    found = re.search(r"detail='([^']*)'\) is not valid: (.*)", text)
    return ('%s (in %s)' % (found.group(2), found.group(1)) if found
            else text)


def validate_config(conf_=CONF):
    """Fail at start-up, naming the option, rather than late in a task."""
    # oslo.config checks a value only when it is read: read them all now.
    for group, opts in list_opts():
        group = getattr(group, 'name', group)
        for opt in opts:
            try:
                getattr(conf_[group], opt.dest)
            except (cfg.ConfigFileValueError, ValueError) as e:
                raise exception.InvalidConfig(
                    reason='[%s] %s: %s' % (group, opt.name,
                                            _value_error(e)))
    vmware = conf_.vmware
    for name in ('host_ip', 'host_username', 'host_password'):
        if not getattr(vmware, name):
            raise exception.InvalidConfig(
                reason='[vmware] %s must be set' % name)
    if not cluster_names(conf_):
        raise exception.InvalidConfig(
            reason='no cluster configured: set [vmware] cluster_name or '
                   '[vcdriver] cluster_names')
    if vmware.pbm_enabled and not vmware.pbm_default_policy:
        # As in-tree (PbmDefaultPolicyUnspecified): a flavor without
        # vmware:storage_policy needs a policy too.
        raise exception.InvalidConfig(
            reason='[vmware] pbm_enabled needs [vmware] pbm_default_policy, '
                   'the storage policy of instances whose flavor names '
                   'none (vmware:storage_policy)')
    if vmware.datastore_regex:
        try:
            re.compile(vmware.datastore_regex)
        except re.error as e:
            raise exception.InvalidConfig(
                reason='[vmware] datastore_regex %r is not a regular '
                       'expression: %s' % (vmware.datastore_regex, e))
    if vmware.ca_file and not vmware.insecure:
        try:
            with open(vmware.ca_file, 'rb'):
                pass
        except OSError as e:
            raise exception.InvalidConfig(
                reason='[vmware] ca_file %s cannot be read: %s'
                       % (vmware.ca_file, e.strerror))


register_opts()
