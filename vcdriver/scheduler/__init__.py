"""What nova-scheduler loads from vcdriver: nothing of vSphere, nothing of
the driver (doc/source/features.rst, "Server groups")."""
