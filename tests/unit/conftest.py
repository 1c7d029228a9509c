import pytest
from oslo_config import fixture as config_fixture

import vcdriver.conf


@pytest.fixture
def flags():
    """oslo.config flags on the driver's CONF, reset after the test."""
    fixture = config_fixture.Config(vcdriver.conf.CONF)
    fixture.setUp()
    yield fixture
    fixture.cleanUp()
