"""etc/vcdriver.conf.sample must be what `tox -e genconfig` writes now."""

import os

from oslo_config import generator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_sample_config_is_current(tmp_path):
    fresh = tmp_path / 'vcdriver.conf.sample'
    config = os.path.join(ROOT, 'etc', 'vcdriver-config-generator.conf')
    generator.main(['--config-file', config, '--output-file', str(fresh)])
    with open(os.path.join(ROOT, 'etc', 'vcdriver.conf.sample')) as f:
        committed = f.read()
    assert fresh.read_text() == committed, (
        'etc/vcdriver.conf.sample is stale: run `tox -e genconfig`')
    # Both groups, with the options an in-tree user already sets.
    for needle in ('[vmware]', '[vcdriver]', '#host_ip', '#cluster_name',
                   '#cluster_names', '#datastore_regex'):
        assert needle in committed
