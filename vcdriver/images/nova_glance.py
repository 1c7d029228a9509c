"""What we take from Nova's Glance client beyond its image API.

Nova's ``glance.API`` has no call for an image's raw record, a stream
that glanceclient does not hash a second time, or an upload that is never
resent from wherever a stream had got to. For those three, this module
reaches into ``nova.image.glance``'s private names
(``GlanceClientWrapper.call``, ``_create_onetime_client``,
``_reraise_translated_image_exception``); nothing else in vcdriver does.
tests/unit/test_nova_glance.py pins their behaviour against the Nova we
support, so a Nova that changes them fails a unit test, not a spawn.
"""

from nova.image import glance


def call(context, image_id, method, **kwargs):
    """glanceclient v2 ``images.<method>(image_id, **kwargs)`` through
    Nova's client: its endpoint choice, token and retries; Glance's errors
    become Nova's, as its image API makes them."""
    service, image_id = glance.get_remote_image_service(context, image_id)
    try:
        return service._client.call(context, 2, method, args=(image_id,),
                                    kwargs=kwargs)
    except Exception:
        glance._reraise_translated_image_exception(image_id)


def upload_once(context, image_id, data):
    """glanceclient v2 ``images.upload(image_id, data)`` on a client of
    its own, sent once: a retry would resend a stream from wherever it had
    got to. Errors translated as ``call``'s."""
    service, image_id = glance.get_remote_image_service(context, image_id)
    try:
        client = service._client._create_onetime_client(context, 2)
        return client.images.upload(image_id, data)
    except Exception:
        glance._reraise_translated_image_exception(image_id)
