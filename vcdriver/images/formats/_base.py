"""Errors and the byte plumbing shared by the format converters.

The source is pulled lazily and kept only until it is consumed, and the
output is re-cut into bounded chunks, so a conversion holds a few chunks
whatever the image size.
"""

import array
import itertools
import sys

MiB = 1024 * 1024
SECTOR = 512


class ImageFormatError(Exception):
    """An image that cannot be written as a flat disk; ``str()`` tells the
    operator why and what to do."""


class FormatMismatch(ImageFormatError):
    """The declared format is not what the image's bytes are."""


class UnsupportedImage(ImageFormatError):
    """A valid image that cannot be converted in one streamed pass."""


class CorruptImage(ImageFormatError):
    """Truncated data or metadata that contradicts itself."""


def round_up(n, to=SECTOR):
    return -(-n // to) * to


class Reader:
    """Pulls a chunk iterator lazily; holds bytes only until consumed.

    ``pos`` is the source offset of the first byte not yet consumed. The
    last ``keep`` consumed bytes stay around, so that ``goto`` can step
    back over them (data met before the table that maps it).
    """

    def __init__(self, chunks, label='image', keep=0):
        self._it = iter(chunks)
        self._buf = bytearray()
        self._cur = 0           # index of ``pos`` in _buf
        self._eof = False
        self.pos = 0
        self.keep = keep
        self.label = label

    def _pull(self):
        """Next non-empty source chunk, or None at the end of the source."""
        if self._eof:
            return None
        for chunk in self._it:
            if chunk:
                return chunk
        self._eof = True
        return None

    def _fill(self, n):
        """Make ``n`` unconsumed bytes available; False at the end."""
        buf = self._buf
        while len(buf) - self._cur < n:
            chunk = self._pull()
            if chunk is None:
                return False
            buf += chunk
        return True

    def _trim(self):
        # Drop consumed bytes in batches: a bytearray's front is cheap to
        # cut but not free, and reads can be a byte at a time.
        drop = self._cur - self.keep
        if drop > 65536:
            del self._buf[:drop]
            self._cur -= drop

    def truncated(self, what, at=None):
        if at is None:
            at = self.pos - self._cur + len(self._buf)
        return CorruptImage(
            '%s is truncated: it ends at byte %d, before %s; upload the '
            'whole file again' % (self.label, at, what))

    def peek(self, n):
        """Up to ``n`` bytes (fewer only at the end) without consuming."""
        self._fill(n)
        cur = self._cur
        with memoryview(self._buf) as view:
            return bytes(view[cur:cur + n])

    def advance(self, n):
        """Consume ``n`` bytes already peeked."""
        self._cur += n
        self.pos += n
        self._trim()

    def read(self, n, what):
        """Exactly ``n`` bytes; CorruptImage if the source ends first."""
        data = self.peek(n)
        if len(data) < n:
            raise self.truncated(what)
        self.advance(n)
        return data

    def can_go(self, offset):
        """Whether ``goto(offset)`` is possible."""
        return offset >= self.pos - self._cur

    def goto(self, offset, what):
        """Move to ``offset``: back within the kept bytes, or forward
        discarding; CorruptImage if the source ends first."""
        n = offset - self.pos
        if n < 0:
            if not self.can_go(offset):
                raise AssertionError('offset no longer kept')
            self._cur += n
            self.pos = offset
            return
        buf = self._buf
        while n:
            if self._cur == len(buf):
                chunk = self._pull()
                if chunk is None:
                    raise self.truncated(what)
                if len(chunk) <= n and not self.keep:
                    n -= len(chunk)
                    self.pos += len(chunk)
                    continue
                buf += chunk
            k = min(n, len(buf) - self._cur)
            self._cur += k
            self.pos += k
            n -= k
            self._trim()

    def pieces(self, n, what):
        """Yield the next ``n`` bytes in source-sized pieces."""
        buf = self._buf
        if self._cur < len(buf):
            piece = self.peek(min(n, len(buf) - self._cur))
            self.advance(len(piece))
            n -= len(piece)
            yield piece
        while n:
            chunk = self._pull()
            if chunk is None:
                raise self.truncated(what)
            if len(chunk) > n:
                self._buf = buf = bytearray(memoryview(chunk)[n:])
                self._cur = 0
                chunk = chunk[:n]
            n -= len(chunk)
            self.pos += len(chunk)
            yield chunk if type(chunk) is bytes else bytes(chunk)

    def drain(self):
        """Consume the rest of the source (so a hash over it sees every
        byte); return the source's total length."""
        end = self.pos - self._cur + len(self._buf)
        self._buf.clear()
        self._cur = 0
        while True:
            chunk = self._pull()
            if chunk is None:
                self.pos = end
                return end
            end += len(chunk)


def rechunk(pieces, chunk_size, total):
    """Cut ``pieces`` (bytes, or an int count of zero bytes) into chunks of
    ``chunk_size`` totalling exactly ``total``, zero-padding the end.

    The last chunk is held back until ``pieces`` is exhausted, so an error
    raised at its end (a truncated source, a size check) always stops the
    consumer short of ``total`` bytes: an upload fails instead of landing.
    """
    cs = chunk_size
    zero = memoryview(bytes(cs))
    zero_chunk = zero.obj
    buf = bytearray()
    held = None
    done = 0
    for piece in itertools.chain(pieces, (None,)):
        if piece is None:
            piece = total - done
        elif type(piece) is int:
            done += piece
        else:
            done += len(piece)
        if done > total:
            raise CorruptImage('image holds more data (%d bytes) than its '
                               'virtual size (%d bytes)' % (done, total))
        if type(piece) is int:
            n = piece
            if buf:
                k = min(n, cs - len(buf))
                buf += zero[:k]
                n -= k
                if len(buf) == cs:
                    if held is not None:
                        yield held
                    held = bytes(buf)
                    buf.clear()
            while n >= cs:
                if held is not None:
                    yield held
                held = zero_chunk
                n -= cs
            if n:
                buf += zero[:n]
            continue
        if not buf and len(piece) == cs:
            if held is not None:
                yield held
            held = piece if type(piece) is bytes else bytes(piece)
            continue
        buf += piece
        while len(buf) >= cs:
            if held is not None:
                yield held
            held = bytes(buf[:cs])
            del buf[:cs]
    if held is not None:
        yield held
    if buf:
        yield bytes(buf)


def table(data, typecode, byteorder):
    """Fixed-size table entries as integers, in the file's byte order."""
    entries = array.array(typecode, data)
    if sys.byteorder != byteorder:
        entries.byteswap()
    return entries
