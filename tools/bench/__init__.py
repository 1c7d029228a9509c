"""``python -m tools.bench``: benchmarks that print a table (never tests).

One module per concern (a *section*; image_transfer is a package of them);
``__main__`` runs the sections asked for and merges their figures into one
flat JSON object. Shared helpers: ``netns`` (a tbf-shaped link between two
network namespaces), ``measure`` (wall time, CPU and peak RSS inside the
measured process), ``report`` (tables, targets, JSON), ``worker`` (each
case in a fresh worker process, its result handed back on stdout).
"""
