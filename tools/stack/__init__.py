"""``python -m tools.stack`` (``tox -e stack -- up|down|status``): a small
but real OpenStack on this machine, to prove the driver the way operators
run it.

Every service is a process of its own with its data, config and log under
``.cache/stack``: MariaDB and RabbitMQ as private instances (``infra``);
Keystone (its own venv), Placement and the Nova API under gunicorn,
nova-conductor, nova-scheduler, two nova-compute services running vcdriver
(configured by ``devstack/plugin.sh`` through ``devstack.sh``), Glance
behind Keystone and the vcsim launcher as vCenter (``openstack``). ``procs``
starts and stops them; ``cloud`` orders them and keeps their state.
"""
