"""The section's name, its units and the parts its figure names are made of.

Shared by the 1/4 GiB figures (figures.py), the realistic images'
(realistic.py), the servers (bench.py), the workers and the command line,
so that none of them imports another for a size label or a ratio.
"""

NAME = 'image_transfer'

MiB = 1 << 20
GiB = 1 << 30


def size_label(gib):
    """1 -> '1gib', 0.25 -> '256mib': a figure-name part without dots."""
    mib = round(gib * 1024)
    if mib % 1024 == 0:
        return '%dgib' % (mib // 1024)
    return '%dmib' % mib


def size_bytes(gib):
    return round(gib * 1024) * MiB


def bytes_label(n):
    if n % MiB == 0:
        return '%dmib' % (n // MiB)
    return '%dkib' % (n // 1024)


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b
