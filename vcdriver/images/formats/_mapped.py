"""Guest-ordered output from images whose tables map grains to the file.

qcow2 (L1/L2 tables, clusters) and hosted sparse VMDK (grain directory,
grain tables, grains) share one shape: a top table points at second-level
tables, whose entries point at grains. The file is read once front to
back; the items of interest (top table, tables, grains) sit in a heap by
file offset, so everything between them is skipped without being kept.
Grains are emitted in guest order; a grain met in the file before its turn
is kept in a bounded spill, and the last bytes passed are kept a while
for a grain met before its table; beyond those bounds the image raises
UnsupportedImage.
"""

import heapq

from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import UnsupportedImage

ZERO = 0        # unallocated or zeroed: reads as zeros
DATA = 1        # grain stored as is
COMPRESSED = 2  # grain stored compressed, ``length`` bytes at most

_TOP, _TABLE, _GRAIN = 0, 1, 2


class Table:
    """One second-level table: per entry its kind, file offset, length."""

    __slots__ = ('kinds', 'hosts', 'lengths', 'order')

    def __init__(self, kinds, hosts, lengths):
        self.kinds = kinds
        self.hosts = hosts
        self.lengths = lengths
        stored = [i for i, k in enumerate(kinds) if k != ZERO]
        self.order = sorted(stored, key=hosts.__getitem__)


class MappedImage:
    """Subclasses set the geometry and parse tables and grains."""

    kind_name = 'image'      # for messages: 'qcow2 image'
    grain_name = 'grain'     # 'cluster' for qcow2
    fix_hint = ''            # the qemu-img command that makes it streamable

    def __init__(self, reader, size, grain, per_table, top_offset,
                 top_length, table_length, spill_limit):
        self.reader = reader
        self.size = size
        self.grain = grain
        self.per_table = per_table
        self.span = grain * per_table
        self.ntables = -(-size // self.span)
        self.top_offset = top_offset
        self.top_length = top_length
        self.table_length = table_length
        self.spill_limit = spill_limit
        # qemu packs compressed clusters into a shared host cluster that
        # can precede the L2 table allocated meanwhile: keep some bytes.
        reader.keep = min(spill_limit, max(4 * grain, MiB))
        self._heap = []
        self._seq = 0
        self._top = None
        self._tables = {}
        self._spill = {}
        self._spilled = 0

    # Format hooks.

    def parse_top(self, data):
        """File offsets of the second-level tables (0: none)."""
        raise NotImplementedError

    def parse_table(self, data):
        """A Table for one second-level table's bytes."""
        raise NotImplementedError

    def read_compressed(self, length, need):
        """Inflate the grain at the reader's position."""
        raise NotImplementedError

    # Engine.

    def _push(self, host, kind, a=None, b=None):
        self._seq += 1
        heapq.heappush(self._heap, (host, self._seq, kind, a, b))

    def _out_of_order(self, what, host):
        return UnsupportedImage(
            '%s cannot be converted in one pass: its %s at byte %d comes '
            'before the table that maps it, by more than the %d KiB the '
            'driver keeps (or it overlaps other data). Rewrite the image '
            'in order with `%s` and upload the result'
            % (self.kind_name, what, host, self.reader.keep // 1024,
               self.fix_hint))

    def _read_grain(self, kind, length, need):
        if kind == COMPRESSED:
            return self.read_compressed(length, need)
        reader = self.reader
        data = reader.peek(self.grain)
        if len(data) < need:
            raise reader.truncated('the %s data it maps' % self.grain_name)
        reader.advance(len(data))
        return data

    def _pump(self):
        """Read the next item in file order; a grain comes back as
        ``(key, bytes)``, a table or the top table as None."""
        host, _, kind, a, b = heapq.heappop(self._heap)
        reader = self.reader
        if kind == _GRAIN:
            what = self.grain_name
        elif kind == _TABLE:
            what = 'table'
        else:
            what = 'top table'
        if not reader.can_go(host):
            raise self._out_of_order(what, host)
        reader.goto(host, 'the %s at byte %d' % (what, host))
        if kind == _TOP:
            tops = self.parse_top(reader.read(self.top_length, what))
            for t in range(self.ntables):
                if tops[t]:
                    self._push(tops[t], _TABLE, t)
            self._top = tops
            return None
        if kind == _TABLE:
            data = reader.read(self.table_length, what)
            # Entries past the disk's end are never read, whatever they say.
            used = -(-min(self.span, self.size - a * self.span) // self.grain)
            table = self.parse_table(
                data[:used * (self.table_length // self.per_table)])
            self._tables[a] = table
            if table.order:
                self._push(table.hosts[table.order[0]], _GRAIN, table,
                           (a, 0))
            return None
        table, (t, pos) = a, b
        i = table.order[pos]
        if pos + 1 < len(table.order):
            self._push(table.hosts[table.order[pos + 1]], _GRAIN, table,
                       (t, pos + 1))
        key = t * self.per_table + i
        need = min(self.grain, self.size - key * self.grain)
        data = self._read_grain(table.kinds[i], table.lengths[i], need)
        return key, data

    def _grain(self, key):
        data = self._spill.pop(key, None)
        if data is not None:
            self._spilled -= len(data)
            return data
        while True:
            got = self._pump()
            if got is None:
                continue
            if got[0] == key:
                return got[1]
            self._keep(*got)

    def _keep(self, key, data):
        self._spill[key] = data
        self._spilled += len(data)
        if self._spilled > self.spill_limit:
            raise UnsupportedImage(
                '%s cannot be converted in one pass: its %ss are stored '
                'out of guest order by more than the %d MiB the driver '
                'buffers (at guest offset %d). Rewrite the image in order '
                'with `%s` and upload the result'
                % (self.kind_name, self.grain_name,
                   self.spill_limit // (1024 * 1024),
                   key * self.grain, self.fix_hint))

    def _table(self, t):
        while t not in self._tables:
            got = self._pump()
            if got is not None:
                self._keep(*got)
        return self._tables.pop(t)

    def pieces(self):
        """Guest bytes in order: bytes for data, ints for runs of zeros."""
        self._push(self.top_offset, _TOP)
        while self._top is None:
            self._pump()
        grain = self.grain
        for t in range(self.ntables):
            base = t * self.span
            span = min(self.span, self.size - base)
            if not self._top[t]:
                yield span
                continue
            kinds = self._table(t).kinds
            zeros = 0
            for i in range(-(-span // grain)):
                need = min(grain, span - i * grain)
                if kinds[i] == ZERO:
                    zeros += need
                    continue
                if zeros:
                    yield zeros
                    zeros = 0
                data = self._grain(t * self.per_table + i)
                yield data if len(data) == need else data[:need]
            if zeros:
                yield zeros
