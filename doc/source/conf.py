"""Sphinx configuration of the vcdriver documentation.

Built offline by ``tox -e docs``: no intersphinx, no remote theme. The
configuration reference is rendered by oslo.config's Sphinx extension
from the ``vcdriver`` namespace (``oslo.config.opts`` entry point), so
vcdriver must be installed in the building environment.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join('..', '..')))

import vcdriver  # noqa: E402

project = 'vcdriver'
author = 'vcdriver contributors'
copyright = '%s' % author
release = vcdriver.__version__
version = release

extensions = [
    'oslo_config.sphinxext',
]

master_doc = 'index'
root_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = ['_build']
pygments_style = 'sphinx'
language = 'en'

html_theme = 'alabaster'
html_theme_options = {
    'description': 'OpenStack Nova compute driver for VMware vCenter',
    'fixed_sidebar': True,
    'page_width': '1100px',
    'sidebar_width': '240px',
}
html_sidebars = {
    '**': ['about.html', 'navigation.html', 'searchbox.html'],
}
html_static_path = []
html_title = 'vcdriver %s' % release
