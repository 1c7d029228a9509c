"""Nova's Glance client, as vcdriver.images.nova_glance uses its private
names, pinned against the Nova we support.

A fake glanceclient stands in for Glance; everything between it and
``nova_glance`` is Nova's own code: its endpoint choice from
``[glance] api_servers``, its retries, its translation of Glance's
errors. A Nova that renames or changes any of it fails here.
"""

from unittest import mock

import glanceclient.exc
import pytest
from nova import context as nova_context
from nova import exception as nova_exception

from vcdriver.images import nova_glance

ENDPOINT = 'http://glance.example:9292'


class FakeImages:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def _next(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def data(self, *args, **kwargs):
        return self._next('data', *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._next('get', *args, **kwargs)

    def upload(self, *args, **kwargs):
        return self._next('upload', *args, **kwargs)


@pytest.fixture
def glance(flags):
    """(the fake images controller, the glanceclient.Client mock)."""
    flags.config(api_servers=[ENDPOINT], num_retries=2, group='glance')
    images = FakeImages([])
    with mock.patch('glanceclient.Client') as client:
        client.return_value.images = images
        yield images, client


@pytest.fixture
def context():
    return nova_context.RequestContext('user', 'project', auth_token='tok',
                                      is_admin=False)


def test_call_reaches_glanceclient_with_the_image_and_kwargs(glance,
                                                              context):
    images, client = glance
    images.outcomes = [{'id': 'img', 'virtual_size': 42}]
    record = nova_glance.call(context, 'img', 'get')
    assert record == {'id': 'img', 'virtual_size': 42}
    stream = object()
    images.outcomes = [stream]
    assert nova_glance.call(context, 'img', 'data',
                            do_checksum=False) is stream
    assert images.calls == [('get', ('img',), {}),
                            ('data', ('img',), {'do_checksum': False})]
    version, = client.call_args.args
    assert str(version) == '2'
    assert client.call_args.kwargs['endpoint_override'] == ENDPOINT


def test_call_retries_as_nova_does(glance, context):
    images, client = glance
    lost = glanceclient.exc.CommunicationError('gone')
    images.outcomes = [lost, lost, {'id': 'img'}]
    assert nova_glance.call(context, 'img', 'get') == {'id': 'img'}
    assert len(images.calls) == 3       # 1 + [glance] num_retries
    images.outcomes = [lost, lost, lost]
    with pytest.raises(nova_exception.GlanceConnectionFailed):
        nova_glance.call(context, 'img', 'get')


@pytest.mark.parametrize('glance_error,nova_error', [
    (glanceclient.exc.HTTPNotFound, nova_exception.ImageNotFound),
    (glanceclient.exc.HTTPForbidden, nova_exception.ImageNotAuthorized),
    (glanceclient.exc.HTTPUnauthorized, nova_exception.ImageNotAuthorized),
    (glanceclient.exc.HTTPBadRequest, nova_exception.ImageBadRequest),
    (glanceclient.exc.HTTPOverLimit, nova_exception.ImageQuotaExceeded),
])
def test_errors_are_nova_s(glance, context, glance_error, nova_error):
    images, _client = glance
    images.outcomes = [glance_error('no'), glance_error('no')]
    with pytest.raises(nova_error) as raised:
        nova_glance.call(context, 'img', 'data')
    assert raised.value.kwargs['image_id'] == 'img'
    with pytest.raises(nova_error):
        nova_glance.upload_once(context, 'img', iter([b'x']))


def test_upload_goes_once(glance, context):
    images, client = glance
    data = iter([b'x'])
    images.outcomes = [None]
    nova_glance.upload_once(context, 'img', data)
    assert images.calls == [('upload', ('img', data), {})]
    images.calls.clear()
    images.outcomes = [glanceclient.exc.CommunicationError('gone'), None]
    with pytest.raises(glanceclient.exc.CommunicationError):
        nova_glance.upload_once(context, 'img', data)
    assert len(images.calls) == 1       # never resent
