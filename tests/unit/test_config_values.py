"""Every option the driver reads, given a value of the wrong kind in
nova.conf, stops start-up with a message naming it (issue 6 item 4).

oslo.config only checks a value when it is read; validate_config reads
every option at start-up, so a bad one is found there and not in the
middle of a spawn hours later.
"""

import pytest
from oslo_config import cfg
from oslo_config import types

from vcdriver import conf
from vcdriver import exception

VALID = {'host_ip': 'vc.example.org', 'host_username': 'nova',
         'host_password': 'secret', 'cluster_name': 'Cluster1'}


def _bad_value(opt):
    """A value nova.conf may hold that the option's type refuses."""
    kind = opt.type
    if isinstance(kind, types.Port):
        return '70000'
    if isinstance(kind, types.Integer):
        if kind.min is not None:
            return str(kind.min - 1)
        return 'many'
    if isinstance(kind, types.Float):
        return 'lots'
    if isinstance(kind, types.Boolean):
        return 'perhaps'
    if isinstance(kind, types.String) and kind.choices:
        return 'not-a-choice'
    if isinstance(kind, types.URI):
        return 'no uri at all'
    if isinstance(kind, types.HostAddress):
        return 'not a host!'
    return None


def _cases():
    cases = []
    for group, opts in conf.list_opts():
        group = getattr(group, 'name', group)
        for opt in opts:
            bad = _bad_value(opt)
            if bad is not None:
                cases.append(pytest.param(group, opt.name, bad,
                                          id='%s.%s' % (group, opt.name)))
    return cases


CASES = _cases()


def test_the_cases_cover_every_typed_option():
    typed = {(g, o) for g, o, _b in (c.values for c in CASES)}
    # Free-form strings and lists have no wrong kind; datastore_regex and
    # ca_file are checked by meaning (test_config.py).
    assert ('vmware', 'host_port') in typed
    assert ('vcdriver', 'task_timeout') in typed
    assert ('vcdriver', 'vcenter_protocol') in typed
    assert ('vmware', 'insecure') in typed
    assert len(CASES) >= 15, [c.id for c in CASES]


@pytest.mark.parametrize('group,option,bad', CASES)
def test_bad_value_stops_start_up_naming_the_option(tmp_path, group, option,
                                                    bad):
    conf_file = tmp_path / 'nova.conf'
    lines = ['[vmware]'] + ['%s = %s' % kv for kv in VALID.items()
                            if not (group == 'vmware' and kv[0] == option)]
    if group == 'vmware':
        lines.append('%s = %s' % (option, bad))
    else:
        lines += ['[%s]' % group, '%s = %s' % (option, bad)]
    conf_file.write_text('\n'.join(lines) + '\n')
    conf_ = cfg.ConfigOpts()
    conf.register_opts(conf_)
    conf_(['--config-file', str(conf_file)], project='nova',
          default_config_files=[], default_config_dirs=[])
    with pytest.raises(exception.InvalidConfig) as err:
        conf.validate_config(conf_)
    message = str(err.value)
    assert '[%s] %s' % (group, option) in message, message
    assert str(conf_file) in message, message
    assert 'LocationInfo' not in message, message
