"""The only layer that speaks vSphere's SOAP API (through pyVmomi)."""
