"""Sphinx configuration of the vcdriver release notes (``tox -e
releasenotes``): reno's extension renders the notes of releasenotes/notes
as the git history records them."""

project = 'vcdriver release notes'
author = 'vcdriver contributors'
copyright = '%s' % author
release = ''
version = ''

extensions = [
    'reno.sphinxext',
]

master_doc = 'index'
root_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = ['_build']
pygments_style = 'sphinx'
language = 'en'

html_theme = 'alabaster'
html_static_path = []
