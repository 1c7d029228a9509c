"""Lets ``compute_driver = vcdriver.VMwareVCDriver`` load the driver."""
from vcdriver.driver import VMwareVCDriver

__all__ = ['VMwareVCDriver']
