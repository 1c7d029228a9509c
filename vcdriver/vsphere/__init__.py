"""The only layer that speaks vSphere's SOAP API (through pyVmomi): every
method call on a managed object, every task wait, in a module named after
the object it acts on (doc/source/architecture.rst, "The vSphere
boundary"; tests/unit/test_vsphere_boundary.py keeps it so)."""
