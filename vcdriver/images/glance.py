"""What we need of Glance: an image's record and its byte stream.

Both go through Nova's own image API, so Nova's Glance settings, retries,
token handling and signature verification apply unchanged.
"""

import dataclasses
import hashlib
import queue
import socket
import ssl
import threading
import urllib.parse

from nova import exception as nova_exception
from nova.image import glance

from vcdriver import exception
from vcdriver.images import nova_glance

_API = glance.API()
# Chunks handed to the hashing thread ahead of it: a few MiB at most.
HASH_QUEUE_CHUNKS = 8


@dataclasses.dataclass
class Image:
    id: str
    name: str
    size: int
    disk_format: str
    container_format: str
    hash_algo: str
    hash_value: str
    properties: dict
    locations: tuple = ()   # URLs Glance shows (direct_url, locations)

    @classmethod
    def from_glance(cls, meta):
        props = meta.get('properties') or {}
        algo, value = meta.get('os_hash_algo'), meta.get('os_hash_value')
        if not (algo and value) and meta.get('checksum'):
            algo, value = 'md5', meta['checksum']
        return cls(id=meta['id'], name=meta.get('name') or '',
                   size=int(meta.get('size') or 0),
                   disk_format=meta.get('disk_format'),
                   container_format=meta.get('container_format'),
                   hash_algo=algo, hash_value=value, properties=props,
                   locations=tuple(loc['url']
                                   for loc in meta.get('locations') or ()
                                   if loc.get('url')))


def get(context, image_id):
    image = Image.from_glance(_API.get(context, image_id,
                                       include_locations=True))
    if not image.hash_value:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id,
            reason='Glance recorded no hash (os_hash_value or checksum) for '
                   'it, so its bytes cannot be verified')
    return image


def stream(context, image_id):
    """An iterator over the image bytes, unverified: the caller checks the
    hash once, as the bytes pass.

    Goes to Nova's Glance client (``nova_glance``) rather than
    ``API.download``: that would have glanceclient hash every byte a
    second time, and with signature verification on it drains the stream
    before returning it.
    """
    chunks = nova_glance.call(context, image_id, 'data', do_checksum=False)
    if chunks.wrapped is None:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id, reason='Glance holds no data for it')
    return chunks


def virtual_size(context, image_id):
    """The disk size Glance worked out from the image's header (Glance
    23 and later), or None. Nova's image API leaves it out of its
    records, so this asks Nova's Glance client for the raw record."""
    return nova_glance.call(context, image_id, 'get').get('virtual_size')


def data_url(context, image_id, endpoint=None):
    """Where a client holding the user's token (X-Auth-Token) GETs the
    image's bytes: ``endpoint`` or, by default, the Glance endpoint Nova
    uses ([glance] api_servers or the catalog)."""
    endpoint = endpoint or next(glance.get_api_servers(context))
    return '%s/v2/images/%s/file' % (endpoint.rstrip('/'), image_id)


def tls_thumbprint(url, cafile=None, insecure=False, timeout=30):
    """The SHA-1 thumbprint (``AA:BB:...``) of the certificate an https
    ``url`` serves, verified here first (against ``cafile``, else the
    system's CAs, unless ``insecure``); None for http. ESX has no CA
    store for arbitrary servers: a host pulling from the URL checks the
    thumbprint its client vouches for."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != 'https':
        return None
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((parts.hostname, parts.port or 443),
                                  timeout=timeout) as sock:
        with context.wrap_socket(sock,
                                 server_hostname=parts.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    digest = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Download:
    """An image's bytes from Glance, counted as the pipeline pulls them
    and hashed beside it, then checked once against Glance's record.

    The hash runs on a thread of its own: sha512 is about as costly as
    all the rest of a conversion, and hashlib lets go of the GIL, so on a
    host with cores to spare it costs no time (under eventlet it takes
    turns, as before)."""

    def __init__(self, context, image):
        self.image = image
        self.hasher = hashlib.new(image.hash_algo)
        self.size = 0
        self._chunks = stream(context, image.id)
        self._pending = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._hashing = threading.Thread(target=self._hash, daemon=True,
                                         name='hash-%s' % image.id)

    def __iter__(self):
        self._hashing.start()
        try:
            for chunk in self._chunks:
                self.size += len(chunk)
                self._pending.put(chunk)
                yield chunk
        finally:
            self._pending.put(None)

    def _hash(self):
        while (chunk := self._pending.get()) is not None:
            self.hasher.update(chunk)

    def close(self):
        close = getattr(self._chunks, 'close', None)
        if close:
            close()

    def verify(self):
        """Glance's size and hash of the bytes that passed."""
        self._hashing.join()
        image = self.image
        if self.size != image.size:
            raise exception.ImageTransferFailed(
                image_id=image.id, reason='Glance sent %d bytes, its '
                'record says %d' % (self.size, image.size))
        digest = self.hasher.hexdigest()
        if digest != image.hash_value:
            raise exception.ImageChecksumMismatch(
                image_id=image.id, algo=image.hash_algo, actual=digest,
                expected=image.hash_value)

    def broken_off(self, error):
        """The error of a download that ended early: no other host would
        do better, so Nova should not reschedule."""
        return exception.ImageTransferFailed(
            image_id=self.image.id,
            reason='the download from Glance broke off after %d of %d '
                   'bytes: %s' % (self.size, self.image.size, error))


class _ChunkFile:
    """A file over an iterator of chunks: glanceclient uploads from
    ``read(size)``, not from an iterator."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = b''

    def read(self, size=-1):
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return b''
        if size is None or size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b''
        else:
            data, self._pending = (self._pending[:size],
                                   self._pending[size:])
        return data


def upload(context, image_id, metadata, chunks):
    """Set an image's metadata (properties merged), then upload ``chunks``
    (an iterable of bytes) as its data; return Glance's record of it.

    The data goes in one request, never retried: Nova's client retries a
    failed call, which would resend a stream from wherever it had got to,
    so the data goes once (``nova_glance.upload_once``). Not
    ``API.update(data=...)`` either: under eventlet that reads the data
    in a native thread (tpool), where a green producer cannot hand it
    over.
    """
    _API.update(context, image_id, metadata, purge_props=False)
    nova_glance.upload_once(context, image_id, _ChunkFile(chunks))
    return _API.get(context, image_id)
