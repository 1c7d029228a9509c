"""Start-up configuration checks (conf.validate_config) and the cluster
list (conf.cluster_names)."""

import pytest
from nova import exception as nova_exception

import vcdriver.conf
from vcdriver import driver
from vcdriver import exception


@pytest.fixture
def valid(flags):
    """A configuration validate_config accepts."""
    flags.config(group='vmware', host_ip='vc.example.org',
                 host_username='administrator@vsphere.local',
                 host_password='secret', cluster_name='Cluster1')
    return flags


def invalid(match):
    with pytest.raises(exception.InvalidConfig) as err:
        vcdriver.conf.validate_config()
    message = str(err.value)
    assert match in message, message
    return message


def test_valid_configuration_passes(valid):
    assert vcdriver.conf.validate_config() is None


def test_invalid_config_is_invalid_input():
    assert issubclass(exception.InvalidConfig, nova_exception.InvalidInput)


@pytest.mark.parametrize('option,value', [
    ('host_ip', None),  # a host address option: '' is not even settable
    ('host_username', None),
    ('host_username', ''),
    ('host_password', None),
    ('host_password', ''),
])
def test_missing_connection_option_is_named(valid, option, value):
    valid.config(group='vmware', **{option: value})
    message = invalid('[vmware] %s must be set' % option)
    assert message.startswith('Invalid configuration:')


def test_no_cluster_names_both_options(valid):
    valid.config(group='vmware', cluster_name=None)
    valid.config(group='vcdriver', cluster_names=[])
    message = invalid('no cluster configured')
    assert '[vmware] cluster_name' in message
    assert '[vcdriver] cluster_names' in message


def test_clusters_from_vcdriver_group_alone_are_enough(valid):
    valid.config(group='vmware', cluster_name=None)
    valid.config(group='vcdriver', cluster_names=['A', 'B'])
    vcdriver.conf.validate_config()


@pytest.mark.parametrize('regex', ['[', '(unclosed', '*nfs', 'a{2,1}'])
def test_bad_datastore_regex_is_named(valid, regex):
    valid.config(group='vmware', datastore_regex=regex)
    message = invalid('[vmware] datastore_regex')
    assert repr(regex) in message
    assert 'not a regular expression' in message


@pytest.mark.parametrize('regex', ['nfs.*', '^(gold|silver)-\\d+$', ''])
def test_good_datastore_regex_passes(valid, regex):
    valid.config(group='vmware', datastore_regex=regex)
    vcdriver.conf.validate_config()


def test_missing_ca_file_is_named(valid, tmp_path):
    path = str(tmp_path / 'no-such-ca.pem')
    valid.config(group='vmware', ca_file=path)
    message = invalid('[vmware] ca_file %s cannot be read' % path)
    assert 'No such file or directory' in message


def test_ca_file_that_is_a_directory_is_named(valid, tmp_path):
    valid.config(group='vmware', ca_file=str(tmp_path))
    invalid('[vmware] ca_file %s cannot be read' % tmp_path)


def test_readable_ca_file_passes(valid, tmp_path):
    ca = tmp_path / 'ca.pem'
    ca.write_text('-----BEGIN CERTIFICATE-----\n')
    valid.config(group='vmware', ca_file=str(ca))
    vcdriver.conf.validate_config()


def test_ca_file_is_not_read_when_insecure(valid, tmp_path):
    valid.config(group='vmware', ca_file=str(tmp_path / 'absent.pem'),
                 insecure=True)
    vcdriver.conf.validate_config()


def test_driver_refuses_to_start_with_bad_config(flags):
    flags.config(group='vmware', host_ip=None)
    with pytest.raises(exception.InvalidConfig, match='host_ip'):
        driver.VMwareVCDriver(virtapi=None)


# --- cluster_names ----------------------------------------------------------

@pytest.mark.parametrize('cluster_name,cluster_names,expected', [
    (None, [], []),
    ('C1', [], ['C1']),
    (None, ['C1', 'C2'], ['C1', 'C2']),
    # [vmware] cluster_name comes first, then the others in order.
    ('C1', ['C2', 'C3'], ['C1', 'C2', 'C3']),
    ('C3', ['C1', 'C2'], ['C3', 'C1', 'C2']),
    # Duplicates count once, at their first place.
    ('C1', ['C2', 'C1', 'C3'], ['C1', 'C2', 'C3']),
    ('C1', ['C1'], ['C1']),
    (None, ['C2', 'C2', 'C1', 'C2'], ['C2', 'C1']),
    ('', ['C1', ''], ['C1']),
])
def test_cluster_names(flags, cluster_name, cluster_names, expected):
    flags.config(group='vmware', cluster_name=cluster_name)
    flags.config(group='vcdriver', cluster_names=cluster_names)
    assert vcdriver.conf.cluster_names() == expected
    assert vcdriver.conf.cluster_names(vcdriver.conf.CONF) == expected


def test_cluster_names_from_nova_conf_syntax(flags):
    flags.config(group='vcdriver', cluster_names='C1, C2,C1')
    assert vcdriver.conf.cluster_names() == ['C1', 'C2']


def test_vcdriver_options_have_their_defaults(flags):
    vc = vcdriver.conf.CONF.vcdriver
    assert vc.cluster_names == []
    assert vc.vcenter_protocol == 'https'
    assert vc.image_transfer_chunk_size == 64 * 1024
    assert vc.image_transfer_buffer_chunks == 16


def test_list_opts_reuses_nova_vmware_options():
    groups = dict((getattr(g, 'name', g), opts)
                  for g, opts in vcdriver.conf.list_opts())
    names = [o.name for o in groups['vmware']]
    assert names == list(vcdriver.conf.VMWARE_OPTS_HONOURED)
    assert 'cluster_names' in [o.name for o in groups['vcdriver']]
