"""The wheel lists its packages by hand (pyproject.toml): a package folder
left out of that list installs fine in editable mode and is missing from
every real install."""

import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _package_dirs(top):
    for root, dirs, names in os.walk(os.path.join(REPO, top)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        if '__init__.py' in names:
            yield os.path.relpath(root, REPO).replace(os.sep, '.')


def test_every_package_is_in_the_wheel():
    with open(os.path.join(REPO, 'pyproject.toml')) as f:
        # tomllib is 3.11+; the line is a plain list of strings.
        line = re.search(r'^packages = (\[.*\])$', f.read(), re.M).group(1)
    listed = set(ast.literal_eval(line))
    assert set(_package_dirs('vcdriver')) <= listed
    assert 'nova.virt.vcdriver' in listed
    # Never nova's own namespace packages.
    assert not {'nova', 'nova.virt'} & listed


def test_the_bench_env_has_what_the_soak_imports():
    """The soak runs Nova's functional harness (nova.test needs oslotest,
    the placement fixture openstack-placement): the test extras."""
    import configparser
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(os.path.join(REPO, 'tox.ini'))
    extras = tox.get('testenv:bench', 'extras',
                     fallback=tox.get('testenv', 'extras'))
    assert 'test' in extras.split()
    with open(os.path.join(REPO, 'tools', 'bench', 'soak.py')) as f:
        assert 'from tests.harness import nova' in f.read()
