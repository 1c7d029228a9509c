"""What we need of Glance: an image's record and its byte stream.

Both go through Nova's own image API, so Nova's Glance settings, retries,
token handling and signature verification apply unchanged.
"""

import dataclasses

from nova import exception as nova_exception
from nova.image import glance

_API = glance.API()


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
                   hash_algo=algo, hash_value=value, properties=props)


def get(context, image_id):
    image = Image.from_glance(_API.get(context, image_id))
    if not image.hash_value:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id,
            reason='Glance recorded no hash (os_hash_value or checksum) for '
                   'it, so its bytes cannot be verified')
    return image


def stream(context, image_id):
    """An iterator over the image bytes, unverified: the caller checks the
    hash once, as the bytes pass.

    Goes to Nova's Glance client directly rather than ``API.download``:
    that would have glanceclient hash every byte a second time, and with
    signature verification on it drains the stream before returning it.
    """
    service, image_id = glance.get_remote_image_service(context, image_id)
    try:
        chunks = service._client.call(context, 2, 'data', args=(image_id,),
                                      kwargs={'do_checksum': False})
    except Exception:
        glance._reraise_translated_image_exception(image_id)
    if chunks.wrapped is None:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id, reason='Glance holds no data for it')
    return chunks
