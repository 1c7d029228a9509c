"""Plain-text tables, target checks and the flat JSON of a bench run."""

import json
import math
import os


def fmt_number(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return '%.*f' % (digits, value)


def format_table(headers, rows, align=None):
    """A fixed-width text table; ``align`` is a string of 'l'/'r' per
    column (default: first column left, the others right)."""
    columns = len(headers)
    align = align or 'l' + 'r' * (columns - 1)
    cells = [[str(c) for c in headers]] + [[str(c) for c in row]
                                           for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(columns)]

    def line(row):
        parts = [cell.ljust(widths[i]) if align[i] == 'l'
                 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        return '  '.join(parts).rstrip()
    out = [line(cells[0]), '  '.join('-' * w for w in widths)]
    out.extend(line(r) for r in cells[1:])
    return '\n'.join(out)


class Target:
    """A figure compared with a bound: ``value >= bound`` (``'>='``),
    ``<=`` or ``<``."""

    OPS = {'>=': lambda v, b: v >= b, '<=': lambda v, b: v <= b,
           '<': lambda v, b: v < b}

    def __init__(self, label, value, op, bound):
        if op not in self.OPS:
            raise ValueError('unknown comparison %r' % op)
        self.label = label
        self.value = value
        self.op = op
        self.bound = bound

    @property
    def met(self):
        if self.value is None:
            return None
        return self.OPS[self.op](self.value, self.bound)

    def row(self, digits=2):
        status = {True: 'met', False: 'MISSED', None: 'not measured'}
        return [self.label, fmt_number(self.value, digits),
                '%s %s' % (self.op, fmt_number(self.bound, digits)),
                status[self.met]]


def format_targets(targets):
    return format_table(['target', 'measured', 'wanted', ''],
                        [t.row() for t in targets], align='lrrl')


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    if len(values) % 2:
        return values[mid]
    return (values[mid - 1] + values[mid]) / 2.0


def check_figures(figures):
    """Refuse anything but a flat ``{str: finite number}`` mapping."""
    for name, value in figures.items():
        if not isinstance(name, str) or not name:
            raise ValueError('figure name %r is not a string' % (name,))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError('figure %s is %r, not a number' % (name, value))
        if not math.isfinite(value):
            raise ValueError('figure %s is %r' % (name, value))


def write_json(path, figures):
    """Write the figures as one flat JSON object, names sorted."""
    check_figures(figures)
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(dict(sorted(figures.items())), f, indent=1)
        f.write('\n')
    os.replace(tmp, path)
