"""The output of the processes the tests start (vcsim launchers, Glance
and its gunicorn, the CLI run as a command), handed to who reads it (the
suite's log scan, tests/conftest.py) once the process is done with and
before it goes, with its temporary files."""

#: Callables (source, text), registered by the reader.
READERS = []


def finished(source, text):
    """``text``: everything ``source`` wrote."""
    for reader in READERS:
        reader(source, text)
