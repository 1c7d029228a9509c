"""vcdriver: an OpenStack Nova compute driver for VMware vCenter."""

__version__ = '0.1.0'
