"""``vcdriver``: the operator's preflight, before nova-compute runs.

``vcdriver check`` reads nova.conf as nova-compute does and names each
setting that would stop it or leave a node with nothing to offer, then shows
what each node would report to placement; ``nodes`` and ``images`` list the
nodes and the datastore image caches; ``audit`` lists orphans between Nova's
instances and vCenter's VMs and datastores (audit.py). All of it is here, on
top of the driver's own modules and never beside them, so it prints what the
driver will do (but allocation ratios come from nova.conf or their
``initial_*`` defaults, not from placement) and only ever reads vCenter.
"""

import argparse
import contextlib
import json
import re
import sys
import warnings

# Nova imports eventlet, which warns of its own deprecation: not for
# operators.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

import os_resource_classes as orc
from nova.virt import driver as nova_driver
from oslo_config import cfg
from oslo_utils import units
from pyVmomi import vim

import vcdriver
from vcdriver import audit
from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import exception
from vcdriver import node
from vcdriver import storage_policy
from vcdriver.cli_render import age
from vcdriver.cli_render import render_check
from vcdriver.cli_render import table
from vcdriver.images import cache as image_cache
from vcdriver.vsphere import props
from vcdriver.vsphere import session as session_mod

CONF = conf.CONF
LEVELS = ('ok', 'warning', 'error')  # index: the exit status
OK, WARNING, ERROR = LEVELS
RESOURCES = (orc.VCPU, orc.MEMORY_MB, orc.DISK_GB)


def exit_status(problems):
    return max((LEVELS.index(p['level']) for p in problems), default=0)


def problem(problems, level, message):
    problems.append({'level': level, 'message': message})


def setting(name):
    """The option that names a cluster, for messages."""
    return ('[vmware] cluster_name' if name == CONF.vmware.cluster_name
            else '[vcdriver] cluster_names')


def inventory(state, regex):
    """What update_provider_tree reports for the node."""
    return node.inventory(
        state, nova_driver.ComputeDriver._get_allocation_ratios({}), regex)


def reasons(**conditions):
    """Why a host or datastore is not usable: the true conditions' names."""
    return [name.replace('_', ' ') for name, bad in conditions.items() if bad]


def resolve_each(session, problems):
    """Every configured cluster that resolves; each one missing named."""
    found = []
    for name in conf.cluster_names(CONF):
        try:
            found.extend(cluster_mod.resolve(session, [name]))
        except exception.ClusterNotFound as e:
            problem(problems, ERROR, '%s: cluster %r not found in %s '
                    '(known: %s)' % (setting(name), name, session.url,
                                     e.kwargs['known']))
        except exception.AmbiguousCluster as e:
            problem(problems, ERROR, '%s: %s' % (setting(name), e))
    return found


@contextlib.contextmanager
def vcenter(problems, keep_going=False):
    """(session, clusters, states): config checked, logged in, clusters
    resolved and read in one batch. Problems stop it early unless
    ``keep_going``; the session is None when it could not log in."""
    session, clusters, states = None, [], []
    try:
        conf.validate_config(CONF)
    except exception.InvalidConfig as e:
        problem(problems, ERROR, str(e))
    if CONF.vmware.host_ip and (keep_going or not problems):
        session = session_mod.Session.from_conf(CONF)
        try:
            session.connect()
        except (exception.VCenterError, exception.InvalidConfig) as e:
            problem(problems, ERROR, str(e))
            session = None
    try:
        if session:
            clusters = resolve_each(session, problems)
            if problems and not keep_going:
                clusters = []
            states = cluster_mod.read_state(session, clusters)
        yield session, clusters, states
    finally:
        if session:
            session.logout()


def check_cluster(cluster, state, config, regex, problems):
    where = 'cluster %s (%s)' % (cluster.name, setting(cluster.name))
    drs, das = (getattr(config, a, None) for a in ('drsConfig', 'dasConfig'))
    out = {'name': cluster.name, 'nodename': cluster.nodename,
           'datacenter': cluster.datacenter,
           'drs': bool(drs and drs.enabled), 'ha': bool(das and das.enabled),
           'ha_admission_control': bool(
               das and das.enabled and das.admissionControlEnabled),
           'hosts': [], 'datastores': []}
    if not out['drs']:
        problem(problems, WARNING, '%s: DRS is off: nothing balances the '
                'VMs over its hosts' % where)
    for h in state.hosts:
        why = reasons(disconnected=not h.connected,
                      powered_off=not h.powered_on,
                      in_maintenance=h.in_maintenance,
                      HA_failover_host=state.ha.spare(h))
        out['hosts'].append({'name': h.name, 'usable': not why,
                             'problems': why, 'cpu_threads': h.cpu_threads,
                             'memory_mb': h.memory_mb})
        if set(why) - {'HA failover host'}:
            problem(problems, WARNING, '%s: host %s is %s, not usable'
                    % (where, h.name, ', '.join(why)))
    if not any(h['usable'] for h in out['hosts']):
        problem(problems, ERROR, '%s: no usable host (connected, powered '
                'on, not in maintenance)' % where)
    for d in state.datastores:
        why = reasons(inaccessible=not d.accessible,
                      in_maintenance=d.maintenance_mode not in (None,
                                                                'normal'),
                      unsupported_type=(d.type or '').upper() not in
                      capacity.USABLE_DATASTORE_TYPES)
        match = (None if regex is False else
                 not regex or bool(re.match(regex, d.name)))
        out['datastores'].append({
            'name': d.name, 'type': d.type, 'regex_match': match,
            'usable': not why and bool(match), 'problems': why,
            'capacity_gb': d.capacity // units.Gi,
            'free_gb': d.free_space // units.Gi})
        if not d.accessible:
            problem(problems, WARNING, '%s: datastore %s is inaccessible'
                    % (where, d.name))
    matching = [d for d in out['datastores'] if d['regex_match']]
    if regex is not False and not matching:
        problem(problems, ERROR, '[vmware] datastore_regex: %r matches no '
                'datastore of %s (datastores: %s)' % (
                    regex, where, ', '.join(d.name for d in state.datastores)
                    or 'none'))
    elif matching and not any(d['usable'] for d in matching):
        problem(problems, ERROR, '%s: no datastore matching [vmware] '
                'datastore_regex is usable' % where)
    out['inventory'] = inventory(state, regex)
    return out


def check_storage_policies(session, clusters, states, regex, problems):
    """{cluster name: [{name, default, datastores, usable}]}: each of
    vCenter's storage policies with the datastores of each cluster that
    satisfy it (``usable``: of those, the ones a spawn may take), one
    PBM call per policy for all clusters. With ``[vmware] pbm_enabled``
    off it is for information only: a failure is no problem then."""
    enabled = CONF.vmware.pbm_enabled
    default = CONF.vmware.pbm_default_policy if enabled else None
    datastores = list({d.ref: d for s in states
                       for d in s.datastores}.values())
    try:
        known = storage_policy.policies(session)
        compatible = {name: {d.ref for d in storage_policy.compatibility(
            session, storage_policy.Policy(name, pid), datastores)[0]}
            for name, pid in known.items()}
    except Exception as e:  # no PBM endpoint, faults
        if enabled:
            problem(problems, ERROR, 'storage policies (SPBM) cannot be '
                    'read: %s: %s' % (type(e).__name__, e))
        return {}
    if default and default not in known:
        problem(problems, ERROR, '[vmware] pbm_default_policy %r: vCenter '
                'has no storage policy of that name (its policies: %s)' % (
                    default, ', '.join(sorted(known)) or 'none'))
    found = {}
    for cluster, state in zip(clusters, states, strict=True):
        rows = found[cluster.name] = []
        for name in sorted(known):
            good = [d for d in state.datastores if d.ref in compatible[name]]
            rows.append({'name': name, 'default': name == default,
                         'datastores': [d.name for d in good],
                         'usable': [d.name for d in good
                                    if regex is not False and
                                    d.usable(regex or None)]})
            if name == default and not rows[-1]['usable']:
                problem(problems, ERROR, '[vmware] pbm_default_policy %r: '
                        'no usable datastore of cluster %s satisfies it '
                        '(compatible: %s)' % (name, cluster.name, ', '.join(
                            rows[-1]['datastores']) or 'none'))
    return found


def cmd_check(problems, _args=None):
    regex = CONF.vmware.datastore_regex
    try:
        re.compile(regex or '')
    except re.error:
        regex = False  # validate_config names it
    data = {'vcenter': None, 'clusters': []}
    with vcenter(problems, keep_going=True) as (session, clusters, states):
        if session:
            about = session.about
            data['vcenter'] = {'url': session.url, 'name': about.fullName,
                               'version': about.version,
                               'instance_uuid': about.instanceUuid}
            configs = props.properties(
                session, [c.ref for c in clusters],
                vim.ClusterComputeResource, ['configurationEx'])
            data['clusters'] = [check_cluster(
                c, s, configs.get(c.ref, {}).get('configurationEx'), regex,
                problems) for c, s in zip(clusters, states, strict=True)]
            data['pbm_enabled'] = CONF.vmware.pbm_enabled
            policies = check_storage_policies(session, clusters, states,
                                              regex, problems)
            for c in data['clusters']:
                c['storage_policies'] = policies.get(c['name'], [])
    return data, render_check(data)


def cmd_nodes(problems, _args=None):
    with vcenter(problems) as (_session, clusters, states):
        nodes = [{'nodename': c.nodename, 'cluster': c.name,
                  'datacenter': c.datacenter,
                  'hosts_usable': sum(h.usable for h in s.hosts),
                  'hosts': len(s.hosts),
                  'inventory': inventory(s, CONF.vmware.datastore_regex)}
                 for c, s in zip(clusters, states, strict=True)]
    return {'nodes': nodes}, nodes and table(
        ['NODE', 'CLUSTER', 'DATACENTER', 'HOSTS'] +
        ['%s TOTAL/MAX' % rc for rc in RESOURCES],
        [[n['nodename'], n['cluster'], n['datacenter'],
          '%(hosts_usable)d/%(hosts)d' % n] +
         ['%(total)d/%(max_unit)d' % n['inventory'][rc] for rc in RESOURCES]
         for n in nodes])


def files_in_use(session):
    """Every file a VM uses, parent disks included: one read of all VMs."""
    vms = props.objects_of_type(session, vim.VirtualMachine,
                                ['layoutEx.file', 'config.hardware.device'])
    names = set()
    for p in vms.values():
        names.update(f.name for f in p.get('layoutEx.file') or ())
        for device in p.get('config.hardware.device') or ():
            backing = getattr(device, 'backing', None)
            while backing is not None:
                names.add(getattr(backing, 'fileName', None))
                backing = getattr(backing, 'parent', None)
    names.discard(None)
    return names


def cache_entries(session, clusters, states):
    """The entries on the usable datastores, each datastore once."""
    in_use, now = files_in_use(session), session.current_time()
    regex, seen = CONF.vmware.datastore_regex, set()
    for cluster, state in zip(clusters, states, strict=True):
        for ds in state.datastores:
            if ds.name in seen or not ds.usable(regex):
                continue
            seen.add(ds.name)
            cache = image_cache.DatastoreCache(session, cluster, ds.name)
            for image_id in cache.image_ids(ds.ref):
                entry, last = cache.lookup(image_id), cache.last_used(image_id)
                folder = '%s/' % cache.entry_folder(image_id)
                yield {'datastore': ds.name, 'image_id': image_id,
                       'size': entry.virtual_size if entry else None,
                       'age_seconds': None if last is None
                       else int(now - last),
                       'in_use': any(n.startswith(folder) for n in in_use)}


def cmd_images(problems, _args=None):
    with vcenter(problems) as (session, clusters, states):
        images = list(cache_entries(session, clusters, states))
    return {'images': images}, table(
        ['DATASTORE', 'IMAGE', 'SIZE', 'AGE', 'IN USE'],
        [[i['datastore'], i['image_id'], i['size'], age(i['age_seconds']),
          'yes' if i['in_use'] else 'no'] for i in images])


def read_uuids(path):
    """Instance uuids, one a line ('#' comments), from a file or '-'."""
    if path == '-':
        lines = sys.stdin.read().splitlines()
    else:
        with open(path) as f:
            lines = f.read().splitlines()
    uuids = [ln.split('#')[0].strip().lower() for ln in lines]
    bad = [u for u in uuids if u and not layout.UUID_RE.match(u)]
    if bad:
        raise ValueError('%s: not instance uuids: %s' % (
            path, ', '.join(bad[:5])))
    return {u for u in uuids if u}


def nova_instance_uuids(host=None):
    """Uuids of the non-deleted instances of ``host`` (default: [DEFAULT]
    host) from Nova's database: the host's cell through [api_database]
    when it is set, else [database] itself."""
    from nova import context as nova_context
    from nova import objects
    from nova import rpc
    from nova.db.api import api as api_db_api
    from nova.db.main import api as main_db_api
    from oslo_db.sqlalchemy import enginefacade
    objects.register_all()
    # What Nova's own parse_args does after reading the files. Without it
    # the API database's queries (the host's cell) go to [database], where
    # its tables are not, and targeting the cell finds no transport_url.
    if rpc.TRANSPORT is None:
        rpc.init(CONF)
    for db_api in (main_db_api, api_db_api):
        try:
            db_api.configure(CONF)
        except enginefacade.AlreadyStartedError:
            pass    # in a Nova process: configured when it started
    host = host or CONF.host
    ctx = nova_context.get_admin_context()

    def uuids(cctx):
        return {i.uuid for i in objects.InstanceList.get_by_host(cctx, host)}

    if CONF.api_database.connection:
        cell = objects.HostMapping.get_by_host(ctx, host).cell_mapping
        with nova_context.target_cell(ctx, cell) as cctx:
            return uuids(cctx)
    return uuids(ctx)


def cmd_audit(problems, args):
    try:
        nova = (read_uuids(args.instances) if args.instances
                else nova_instance_uuids())
    except Exception as e:  # unreadable file, no database, no mapping
        problem(problems, ERROR, "Nova's instances: %s" % (
            e if args.instances else '%s (give them with --instances)'
            % e))
        return {}, ''
    with vcenter(problems) as (session, clusters, states):
        if problems:
            return {}, ''
        try:
            report = audit.audit(session, clusters, nova, CONF, states)
        except Exception as e:  # vCenter faults, datastore reads
            problem(problems, ERROR, 'audit failed: %s: %s' % (
                type(e).__name__, e))
            return {}, ''
    if not report.clean:
        problem(problems, WARNING, '%d orphans found' % report.count())
    return dict(report.as_dict(), instances=len(nova)), report.text()


def parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--config-file', action='append', default=[],
                        help='default: /etc/nova/nova.conf, as nova-compute')
    common.add_argument('--config-dir', action='append', default=[])
    common.add_argument('--format', choices=('table', 'json'), default='table')
    top = argparse.ArgumentParser(
        prog='vcdriver', description=__doc__.split('\n')[0])
    top.add_argument('--version', action='version',
                     version='vcdriver %s' % vcdriver.__version__)
    sub = top.add_subparsers(dest='command', required=True)
    commands = {}
    for name, func, text in (
            ('check', cmd_check, 'check nova.conf against vCenter; exit '
                                 '0 ok, 1 warnings, 2 errors'),
            ('nodes', cmd_nodes, 'the nodes and their inventory'),
            ('images', cmd_images, 'the image cache of each datastore'),
            ('audit', cmd_audit, "orphans either way between Nova's "
                                 'instances and the VMs, folders and image '
                                 'cache in vCenter; exit 0 none, 1 found, '
                                 '2 errors')):
        commands[name] = sub.add_parser(name, parents=[common], help=text,
                                        description=text)
        commands[name].set_defaults(func=func)
    commands['audit'].add_argument(
        '--instances', metavar='FILE',
        help="uuids of Nova's instances of this host, one a line ('-': "
             'stdin), e.g. from `openstack server list --all-projects '
             "--host HOST -f value -c ID`; default: read from Nova's "
             'database ([database], [api_database] of nova.conf). '
             'Operations under way may show as orphans: run it again.')
    return top


def main(argv=None):
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code
    problems, data, text = [], {}, ''
    try:
        CONF([a for f in args.config_file for a in ('--config-file', f)] +
             [a for d in args.config_dir for a in ('--config-dir', d)],
             project='nova', prog='nova-compute',
             version=vcdriver.__version__)
        data, text = args.func(problems, args)
    except (cfg.Error, exception.VCenterError) as e:  # bad files or values
        problem(problems, ERROR, str(e))
    level = LEVELS[exit_status(problems)]
    print(json.dumps(dict(status=level, problems=problems, **data), indent=2)
          if args.format == 'json' else '\n\n'.join(filter(None, [
              text, '\n'.join('%(level)s: %(message)s' % p for p in problems),
              args.command == 'check' and 'Status: %s' % level])))
    return exit_status(problems)
