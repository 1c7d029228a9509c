# Nova's functional package must be imported before any other nova module:
# it applies eventlet monkey patching, or with
# OS_NOVA_DISABLE_EVENTLET_PATCHING=true keeps native threads.
import nova.tests.functional  # noqa: F401
