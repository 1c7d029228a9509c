"""Plain-text rendering for the ``vcdriver`` CLI (cli.py): aligned tables
and each command's text. Pure: it takes the data the commands also print
as json."""


def table(headers, rows, indent=''):
    """Plain text, columns aligned; None shows as '-'."""
    cells = [[str(h) for h in headers]] + [
        ['-' if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return '\n'.join(indent + '  '.join(
        c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in cells)


def age(seconds):
    """In the largest unit that fits: '3h', '2d'."""
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60), ('s', 0)):
        if seconds is not None and seconds >= size:
            return '%d%s' % (seconds // (size or 1), unit)


def render_check(data):
    lines = []
    if data['vcenter']:
        lines.append('vCenter %(url)s: %(name)s (instance %(instance_uuid)s)'
                     % data['vcenter'])
    for c in data['clusters']:
        lines += ['', 'Cluster %s (datacenter %s, node %s)' % (
            c['name'], c['datacenter'], c['nodename']),
            '  DRS %s, HA %s' % ('on' if c['drs'] else 'off', (
                'on, admission control on' if c['ha_admission_control']
                else 'on') if c['ha'] else 'off'),
            table(['HOST', 'STATE', 'CPU THREADS', 'MEMORY MB'], [
                [h['name'], ', '.join(h['problems']) or 'usable',
                 h['cpu_threads'], h['memory_mb']] for h in c['hosts']],
                '  '),
            table(['DATASTORE', 'TYPE', 'REGEX', 'STATE', 'CAPACITY GB',
                   'FREE GB'], [
                [d['name'], d['type'], {True: 'match', False: 'no match'}
                 .get(d['regex_match']), ', '.join(d['problems']) or
                 ('usable' if d['usable'] else 'unused'),
                 d['capacity_gb'], d['free_gb']]
                for d in c['datastores']], '  '),
            table(['RESOURCE', 'TOTAL', 'RESERVED', 'MAX UNIT', 'RATIO'], [
                [rc, i['total'], i['reserved'], i['max_unit'],
                 i['allocation_ratio']]
                for rc, i in c['inventory'].items()], '  ')]
        if c.get('storage_policies'):
            lines.append(table(
                ['STORAGE POLICY', 'COMPATIBLE DATASTORES', 'USABLE'], [
                    [p['name'] + (' (default)' if p['default'] else ''),
                     ', '.join(p['datastores']) or 'none',
                     ', '.join(p['usable']) or 'none']
                    for p in c['storage_policies']], '  '))
    if data.get('pbm_enabled') is False and any(
            c.get('storage_policies') for c in data['clusters']):
        lines += ['', 'Storage policies: [vmware] pbm_enabled is off, '
                      "flavors' vmware:storage_policy are ignored"]
    return '\n'.join(lines).lstrip('\n')


# Per list of the leak audit (audit.Report): title, columns, row.
AUDIT_SECTIONS = (
    ('vms_without_instance', 'VMs with the Nova marker but no instance',
     ['UUID', 'NAME', 'MOREF', 'CLUSTER', 'POWER', 'VMX'],
     lambda v: [v['uuid'], v['name'], v['moref'], v['cluster'],
                v['power_state'], v['vmx']]),
    ('instances_without_vm', 'Nova instances without a VM',
     ['UUID', 'VM ELSEWHERE', 'FOLDERS'],
     lambda i: [i['uuid'], i['vm_elsewhere'],
                ', '.join(i['folders']) or None]),
    ('orphan_folders', 'Orphan folders and stray files on the datastores',
     ['KIND', 'PATH', 'FILES', 'BYTES', 'WHY'],
     lambda f: [f['kind'], f['path'], f['files'], f['size'], f['reason']]),
    ('cache_debris', 'Image cache debris',
     ['KIND', 'PATH', 'AGE', 'DETAIL'],
     lambda d: [d['kind'], d['path'], age(d['age_seconds']), d['detail']]),
)


def render_audit(data):
    """Each non-empty list of the report as a table; a line if clean."""
    parts = ['%s (%d):\n%s' % (title, len(data[key]), table(
        headers, [row(x) for x in data[key]], '  '))
        for key, title, headers, row in AUDIT_SECTIONS if data.get(key)]
    return '\n\n'.join(parts) or 'No orphans found.'
