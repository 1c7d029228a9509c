"""Storage policies (SPBM): which policy an instance gets (as in-tree),
the PBM session cookie and version, the profile in the ConfigSpecs, and
the split of a cluster's datastores by PBM's answer. vCenter's answers
themselves are tested against the simulator
(tests/functional/test_storage_policies.py)."""

import logging
import types

import pytest
from pyVmomi import vim

import vcdriver.conf
from vcdriver import capacity
from vcdriver import exception
from vcdriver import extra_specs
from vcdriver import storage_policy
from vcdriver import vm_spec
from vcdriver.vsphere import pbm


def specs(**flavor_specs):
    return extra_specs.parse(flavor_specs, {}, 512)


def test_the_flavor_spec_is_parsed():
    assert specs().storage_policy is None
    assert specs(**{'vmware:storage_policy': ' gold '}).storage_policy == \
        'gold'
    assert specs(**{'vmware:storage_policy': ''}).storage_policy is None


def test_without_pbm_a_flavor_policy_is_ignored_and_logged(flags, caplog):
    flags.config(group='vmware', pbm_enabled=False,
                 pbm_default_policy='silver')
    with caplog.at_level(logging.WARNING):
        assert storage_policy.wanted(
            specs(**{'vmware:storage_policy': 'gold'})) is None
    assert 'storage policy gold' in caplog.text
    assert 'pbm_enabled is off' in caplog.text
    assert storage_policy.wanted(specs()) is None


def test_with_pbm_the_flavor_wins_over_the_default(flags):
    flags.config(group='vmware', pbm_enabled=True,
                 pbm_default_policy='silver')
    assert storage_policy.wanted(
        specs(**{'vmware:storage_policy': 'gold'})) == (
        'gold', 'vmware:storage_policy')
    assert storage_policy.wanted(specs()) == (
        'silver', '[vmware] pbm_default_policy')


def test_pbm_needs_a_default_policy(flags):
    flags.config(group='vmware', host_ip='vc.example.org',
                 host_username='u', host_password='p', cluster_name='C',
                 pbm_enabled=True)
    with pytest.raises(exception.InvalidConfig,
                       match='pbm_enabled needs .vmware. pbm_default_policy'):
        vcdriver.conf.validate_config()
    flags.config(group='vmware', pbm_default_policy='gold')
    vcdriver.conf.validate_config()


def test_an_unknown_policy_is_named(monkeypatch):
    monkeypatch.setattr(storage_policy, 'policies',
                        lambda session: {'gold': 'id-1', 'bronze': 'id-2'})
    assert storage_policy.find(None, 'gold') == storage_policy.Policy(
        'gold', 'id-1')
    with pytest.raises(exception.InvalidSpec) as e:
        storage_policy.find(None, 'platinum')
    assert str(e.value) == (
        'vmware:storage_policy=platinum: vCenter has no storage policy of '
        'that name (its policies: bronze, gold)')


@pytest.mark.parametrize('header,value', [
    ('vmware_soap_session="52a1b2c3d4"; Path=/; HttpOnly; Secure; ',
     '52a1b2c3d4'),                              # vCenter's
    ('vmware_soap_session=7e1f-aa; Path=/; HttpOnly', '7e1f-aa'),  # vcsim's
    ('', ''),
])
def test_the_session_cookie_pbm_takes(header, value):
    assert pbm.session_cookie(header) == value


@pytest.mark.parametrize('api,version', [
    ('6.5', 'pbm.version.version11'),
    ('6.7.2', 'pbm.version.version14'),
    ('8.0.3.0', 'pbm.version.v8_0_3_0'),
    (None, 'pbm.version.version11'),
])
def test_the_pbm_version_follows_the_vcenter_api(api, version):
    assert pbm.pbm_version(api) == version


def test_a_newer_vcenter_gets_the_newest_pbm_version():
    assert pbm.pbm_version('99.0') == pbm.pbm_version('99.1')


def test_the_profile_goes_on_the_vm_home_and_disks():
    instance = types.SimpleNamespace(uuid='u-1', display_name='vm')
    flavor = types.SimpleNamespace(vcpus=1, memory_mb=512)
    spec = vm_spec.create_spec(instance, flavor, 'nfs0', [], specs(), 'p-1')
    assert [p.profileId for p in spec.vmProfile] == ['p-1']
    assert isinstance(spec.vmProfile[0], vim.vm.DefinedProfileSpec)
    assert not vm_spec.create_spec(instance, flavor, 'nfs0', [],
                                   specs()).vmProfile
    change = vm_spec.disk(-1, 1000, 0, '[nfs0] u-1/u-1.vmdk', 1 << 30,
                          create=True, profile_id='p-1')
    assert [p.profileId for p in change.profile] == ['p-1']
    assert not vm_spec.disk(-1, 1000, 0, '[nfs0] u-1/u-1.vmdk', 1 << 30,
                            create=True).profile


def _datastore(moid, name):
    return capacity.Datastore(
        ref=vim.Datastore(moid), name=name, type='NFS', accessible=True,
        maintenance_mode='normal', capacity=1 << 40, free_space=1 << 40)


def test_only_datastores_pbm_finds_compatible(monkeypatch):
    monkeypatch.setattr(pbm, 'check_requirements', lambda s, ids, pid: {
        'datastore-1': [], 'datastore-2': ['no tag gold']})
    nfs0, nfs1, nfs2 = (_datastore('datastore-%d' % n, 'nfs%d' % (n - 1))
                        for n in (1, 2, 3))
    policy = storage_policy.Policy('gold', 'id-1')
    good, why = storage_policy.compatibility(None, policy, [nfs0, nfs1, nfs2])
    assert good == [nfs0]
    assert why == {'nfs1': 'no tag gold', 'nfs2': 'not answered'}

    state = types.SimpleNamespace(cluster=types.SimpleNamespace(name='C0'),
                                  datastores=[nfs1, nfs2])
    with pytest.raises(exception.InvalidSpec) as e:
        storage_policy.compatible_datastores(None, policy, state)
    assert str(e.value) == (
        'vmware:storage_policy=gold: no datastore of cluster C0 satisfies '
        'this storage policy (nfs1: no tag gold; nfs2: not answered)')
