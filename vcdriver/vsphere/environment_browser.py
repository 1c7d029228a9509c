"""Methods of an EnvironmentBrowser (a compute resource's
``environmentBrowser``): the VM configurations its hosts support."""


def query_config_option_descriptor(session, browser):
    """QueryConfigOptionDescriptor: one descriptor per hardware version
    (``key``, ``vmx-<n>``), whether VMs can be created with it
    (``createSupported``) and run (``runSupported``), and on which of the
    hosts (``host``)."""
    return browser.QueryConfigOptionDescriptor()
