"""Cluster names as operators write them, resolved against vcsim."""

import pytest

from tests.harness import vcsim as vcsim_harness
from vcdriver import cluster
from vcdriver import exception
from vcdriver.vsphere import session as session_mod


@pytest.fixture(scope='module')
def two_datacenters():
    with vcsim_harness.Vcsim(datacenters=2, clusters=1,
                             hosts_per_cluster=1) as sim:
        si = vcsim_harness.connect(sim)
        dc1 = si.content.searchIndex.FindByInventoryPath('DC1/host/DC1_C0')
        vcsim_harness.wait_task(dc1.Rename_Task('DC0_C0'))  # same name
        yield sim


def _session(sim):
    s = session_mod.Session(sim.host, sim.port, sim.username, sim.password,
                            protocol='http')
    s.connect()
    return s


def test_same_name_in_two_datacenters_is_refused(two_datacenters):
    with pytest.raises(exception.AmbiguousCluster) as err:
        cluster.resolve(_session(two_datacenters), ['DC0_C0'])
    assert 'DC0, DC1' in str(err.value)
    assert 'DC1/DC0_C0' not in str(err.value)
    assert '<datacenter>/DC0_C0' in str(err.value)


def test_datacenter_qualified_names(two_datacenters):
    found = cluster.resolve(_session(two_datacenters),
                            ['DC0/DC0_C0', 'DC1/DC0_C0'])
    assert [c.datacenter for c in found] == ['DC0', 'DC1']
    assert found[0].ref != found[1].ref
    assert found[0].nodename != found[1].nodename
