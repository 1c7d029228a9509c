"""nova-compute refuses to start on a bad vCenter configuration, and says
which setting is wrong."""

import socket

from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness
from vcdriver import exception


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TestStartupErrors(nova_harness.VcdriverTestCase):
    start_compute = False

    def _start_compute(self):
        return self.start_service('compute', host='compute-bad')

    def test_unknown_cluster_is_named(self):
        self.flags(cluster_name='DC0_C0', group='vmware')
        self.flags(cluster_names=['no-such-cluster'], group='vcdriver')
        err = self.assertRaises(exception.ClusterNotFound,
                                self._start_compute)
        self.assertIn('no-such-cluster', str(err))
        self.assertIn('DC0_C0', str(err))  # lists the clusters that exist

    def test_wrong_password_is_named(self):
        sim = vcsim_harness.Vcsim(clusters=1, username='nova',
                                  password='right').start()
        self.addCleanup(sim.stop)
        self.flags(host_port=sim.port, host_username='nova',
                   host_password='Not-The-Pa55word', group='vmware')
        err = self.assertRaises(exception.VCenterAuthFailed,
                                self._start_compute)
        self.assertIn('nova', str(err))
        self.assertIn('host_password', str(err))
        self.assertNotIn('Not-The-Pa55word', str(err))

    def test_unreachable_vcenter_is_named(self):
        port = _closed_port()
        self.flags(host_port=port, group='vmware')
        err = self.assertRaises(exception.VCenterUnreachable,
                                self._start_compute)
        self.assertIn('127.0.0.1:%d' % port, str(err))

    def test_bad_datastore_regex_is_named(self):
        self.flags(datastore_regex='nfs[', group='vmware')
        err = self.assertRaises(exception.InvalidConfig, self._start_compute)
        self.assertIn('datastore_regex', str(err))
