"""Nova's in-tree VMware driver (nova.virt.vmwareapi), started on our
launcher for comparison, as tools/bench/inventory_refresh.py's
``intree_refresh`` starts it.

    with intree.driver(conf, soap_url, 'https') as drv:
        drv._vmops._fetch_image_if_missing(context, vi)

vcsim serves no WSDL and pyVmomi ships none: oslo.vmware's suds client
gets one made from oslo.vmware's vim25 schemas and pyVmomi's method list
(tools/bench/vim_wsdl.py). The launcher must run with ``-typed-traversal``
(oslo.vmware's recursive inventory walk at start-up loops in stock
vcsim), and the driver's start-up extension registration is skipped
(vcsim refuses its zone-less timestamp). ``[vmware]`` host options must
be set in ``conf`` beforehand.
"""

import contextlib
import shutil
import tempfile

from tools.bench import vim_wsdl


class Unavailable(RuntimeError):
    """The in-tree driver cannot start here; the message says why."""


def _fake_rpc(conf):
    """Its VMOps builds a compute API, which wants an RPC transport: the
    in-memory one (the first init registers the transport options)."""
    import oslo_messaging
    from nova import rpc
    oslo_messaging.set_transport_defaults('nova')
    rpc.init(conf)
    rpc.cleanup()
    conf.set_override('transport_url', 'fake:/')
    rpc.init(conf)


@contextlib.contextmanager
def driver(conf, soap_url, protocol='https'):
    """A started ``VMwareVCDriver`` of ``[vmware] cluster_name``; raises
    Unavailable if it cannot be had (no suds, no WSDL, start-up failed)."""
    try:
        import suds  # noqa: F401
        from oslo_vmware import vim as oslo_vim
    except ImportError as e:
        raise Unavailable('oslo.vmware/suds not importable: %s' % e) from e
    _fake_rpc(conf)
    workdir = tempfile.mkdtemp(prefix='vcdriver-bench-wsdl-')
    init = oslo_vim.Vim.__init__
    try:
        try:
            url, count, schemas = vim_wsdl.write(workdir, soap_url)
        except (LookupError, OSError) as e:
            raise Unavailable('no vSphere WSDL for oslo.vmware: vcsim serves '
                              'none, pyVmomi ships none, and making one '
                              'failed: %s' % e) from e

        def vim_init(self, *args, **kwargs):
            if kwargs.get('wsdl_url') is None:
                kwargs['wsdl_url'] = url
            return init(self, *args, **kwargs)

        oslo_vim.Vim.__init__ = vim_init
        from nova.virt.vmwareapi import driver as intree_driver
        intree_driver.VMwareVCDriver._register_openstack_extension = (
            lambda self: None)
        try:
            drv = intree_driver.VMwareVCDriver(None, scheme=protocol)
        except Exception as e:
            raise Unavailable('the in-tree driver did not start against '
                              'vcsim (WSDL made from oslo.vmware %s schemas, '
                              '%d methods): %s: %s'
                              % (schemas, count, type(e).__name__,
                                 str(e)[:300])) from e
        yield drv
    finally:
        oslo_vim.Vim.__init__ = init
        shutil.rmtree(workdir, ignore_errors=True)
