#!/usr/bin/env python3
"""Record the vcrpy cassettes the unit tests replay (tests/unit/cassettes).

The unit tests of cluster resolution and the batched inventory reads replay
real SOAP traffic between the driver and govmomi's vCenter simulator, so they
run with no simulator, no Go and no network. This script makes that traffic:
it starts our vcsim launcher (tools/vcsim, built on first use; needs Go)
through tests/harness/vcsim.py with fixed options (2 clusters of 3 hosts,
1 NFS datastore, 2 VMs per cluster, fixed host sizes and credentials) and
records one cassette per scenario, each starting from a fresh
``Session.connect()``:

``connect.yaml``          Session.connect()
``resolve.yaml``          cluster.resolve(session, ['DC0_C0', 'DC0_C1'])
``read_state.yaml``       resolve, then cluster.read_state(session, clusters)
``resolve_unknown.yaml``  resolve of a cluster vCenter does not have

and ``vcsim.json``: the simulator's host, port, credentials, about uuid and
the options it ran with, which the replaying tests construct their Session
from and assert against. The simulator's uuid, port and session keys change
with every recording; the tests only compare them with vcsim.json.

Re-record (after changing the reads in vcdriver/cluster.py or
vcdriver/vsphere/, or the launcher) from the repository root with the test
virtualenv's Python, e.g.::

    /tmp/nv/bin/python tools/record_cassettes.py

(in general ``python tools/record_cassettes.py`` from the venv that has
vcdriver, pyVmomi and vcrpy installed), then run the unit tests and commit
tests/unit/cassettes/ as a whole. How requests are matched on replay (and
why pyVmomi needs extra patching) is in tests/unit/soap_cassettes.py.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from tests.harness import vcsim as vcsim_harness  # noqa: E402
from tests.unit import soap_cassettes  # noqa: E402
from vcdriver import cluster  # noqa: E402
from vcdriver import exception  # noqa: E402
from vcdriver.vsphere import session as session_mod  # noqa: E402

CASSETTES = ('connect', 'resolve', 'read_state', 'resolve_unknown')


def _session(sim):
    return session_mod.Session(sim.host, sim.port, sim.username,
                               sim.password, protocol='http',
                               retry_count=0)


def record(sim, vcr_):
    def cassette(name):
        path = os.path.join(soap_cassettes.CASSETTE_DIR, name + '.yaml')
        if os.path.exists(path):
            os.remove(path)
        return vcr_.use_cassette(name + '.yaml')

    with cassette('connect') as cass:
        _session(sim).connect()
    print('connect.yaml: %d requests' % len(cass))

    with cassette('resolve') as cass:
        session = _session(sim)
        session.connect()
        clusters = cluster.resolve(session, soap_cassettes.CLUSTERS)
    print('resolve.yaml: %d requests, nodes %s'
          % (len(cass), [c.nodename for c in clusters]))

    with cassette('read_state') as cass:
        session = _session(sim)
        session.connect()
        clusters = cluster.resolve(session, soap_cassettes.CLUSTERS)
        states = cluster.read_state(session, clusters)
    print('read_state.yaml: %d requests, %s'
          % (len(cass), ['%s: %d hosts, %d datastores'
                         % (s.cluster.name, len(s.hosts), len(s.datastores))
                         for s in states]))

    with cassette('resolve_unknown') as cass:
        session = _session(sim)
        session.connect()
        try:
            cluster.resolve(session, [soap_cassettes.CLUSTERS[0],
                                      soap_cassettes.UNKNOWN_CLUSTER])
        except exception.ClusterNotFound as e:
            print('resolve_unknown.yaml: %d requests, %s' % (len(cass), e))
        else:
            raise SystemExit('resolve of %s did not fail'
                             % soap_cassettes.UNKNOWN_CLUSTER)


def main():
    os.makedirs(soap_cassettes.CASSETTE_DIR, exist_ok=True)
    vcr_ = soap_cassettes.make_vcr(record_mode='all')
    with vcsim_harness.Vcsim(**soap_cassettes.SIM_OPTIONS) as sim:
        record(sim, vcr_)
        meta = {
            'host': sim.host,
            'port': sim.port,
            'protocol': sim.url.split(':', 1)[0],
            'url': sim.url,
            'username': sim.username,
            'password': sim.password,
            'about_uuid': sim.info['about_uuid'],
            'clusters': sim.clusters,
            'datastores': sorted(sim.datastores),
            'options': soap_cassettes.SIM_OPTIONS,
            'unknown_cluster': soap_cassettes.UNKNOWN_CLUSTER,
        }
    soap_cassettes.write_meta(meta)
    print('wrote %s' % soap_cassettes.CASSETTE_DIR)


if __name__ == '__main__':
    main()
