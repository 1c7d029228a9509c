"""vCenter's Storage Policy service (SPBM, the PBM endpoint
``/pbm/sdk``): the storage policies, the datastores that satisfy one, the
policy of a VM home or disk.

pyVmomi, not oslo.vmware's ``pbm`` helpers: those drive a suds client
over oslo.vmware's own session and need PBM's WSDL (``[vmware]
pbm_wsdl_location``); the driver's session is pyVmomi's, which has PBM's
types built in. PBM has no login of its own: it takes the vCenter
session's cookie in the SOAP header ``vcSessionCookie``, read afresh for
every call since the session logs in again after it expires.
"""

import http.cookies
import threading
import weakref

from pyVmomi import pbm
from pyVmomi import SoapAdapter
from pyVmomi import vim
from pyVmomi import VmomiSupport

PATH = '/pbm/sdk'
STORAGE = 'STORAGE'
REQUIREMENT = 'REQUIREMENT'
# PBM's names of a VM's storage objects (pbm.ServerObjectRef.objectType).
VM_HOME = 'virtualMachine'
VIRTUAL_DISK = 'virtualDiskId'

_endpoints = weakref.WeakKeyDictionary()
_endpoints_lock = threading.Lock()


def session_cookie(cookie_header):
    """The session id in pyVmomi's cookie (``vmware_soap_session="…";
    Path=/; …``), which PBM takes as ``vcSessionCookie``."""
    cookies = http.cookies.SimpleCookie()
    cookies.load(cookie_header or '')
    for morsel in cookies.values():
        return morsel.value
    return ''


def _version_key(version_id):
    return tuple(int(p) if p.isdigit() else 0 for p in version_id.split('.'))


def pbm_version(api_version):
    """The newest PBM version pyVmomi knows that is no newer than
    vCenter's API (``about.apiVersion``: PBM's versions follow
    vSphere's since 6.5)."""
    wanted = _version_key(api_version or '6.5')
    known = sorted(VmomiSupport.GetServiceVersions('pbm'),
                   key=lambda v: _version_key(VmomiSupport.versionIdMap[v]))
    fitting = [v for v in known
               if _version_key(VmomiSupport.versionIdMap[v]) <= wanted]
    return (fitting or known)[-1]


class _Endpoint:
    """PBM's service content over a stub of its own, per Session."""

    def __init__(self, session):
        self._session = session
        self.context = {'vcSessionCookie': ''}
        port = session.port if session.protocol == 'https' else -session.port
        self.stub = SoapAdapter.SoapStubAdapter(
            host=session.host, port=port, path=PATH,
            version=pbm_version(session.about.apiVersion),
            sslContext=session.ssl_context(), requestContext=self.context)
        self.content = self.call(lambda: pbm.ServiceInstance(
            'ServiceInstance', self.stub).RetrieveContent())

    def call(self, method):
        """``method()`` with the session's current cookie; once more after
        logging the session in again if vCenter says it ended."""
        self.context['vcSessionCookie'] = session_cookie(
            self._session.cookie)
        try:
            return method()
        except vim.fault.NotAuthenticated:
            # Any vim call logs the session in again (session.py).
            self._session.current_time()
            self.context['vcSessionCookie'] = session_cookie(
                self._session.cookie)
            return method()


def _endpoint(session):
    with _endpoints_lock:
        found = _endpoints.get(session)
        if found is None:
            found = _endpoints[session] = _Endpoint(session)
        return found


def query_profile(session):
    """The ids of vCenter's storage requirement policies
    (PbmQueryProfile)."""
    e = _endpoint(session)
    return e.call(lambda: e.content.profileManager.PbmQueryProfile(
        resourceType=pbm.profile.ResourceType(resourceType=STORAGE),
        profileCategory=REQUIREMENT))


def retrieve_content(session, profile_ids):
    """The profiles of these ids (PbmRetrieveContent)."""
    if not profile_ids:
        return []
    e = _endpoint(session)
    return e.call(lambda: e.content.profileManager.PbmRetrieveContent(
        profileIds=list(profile_ids)))


def check_requirements(session, datastores, profile_id):
    """Each datastore's compatibility with a policy (PbmCheckRequirements):
    {datastore moref id: [fault messages]}, an empty list where it
    satisfies the policy."""
    e = _endpoint(session)
    hubs = [pbm.placement.PlacementHub(hubType='Datastore', hubId=d)
            for d in datastores]
    requirement = pbm.placement.CapabilityProfileRequirement(
        profileId=pbm.profile.ProfileId(uniqueId=profile_id))
    results = e.call(lambda: e.content.placementSolver.PbmCheckRequirements(
        hubsToSearch=hubs, placementSubjectRequirement=[requirement]))
    # pyVmomi hands each LocalizedMethodFault over as the fault, its
    # message in msg.
    return {r.hub.hubId: [getattr(f, 'msg', None) or type(f).__name__
                          for f in r.error or ()]
            for r in results if r.hub.hubType == 'Datastore'}


def query_associated_profile(session, object_type, key):
    """The policy ids of a VM home (``VM_HOME``, key the VM's moref id)
    or a disk (``VIRTUAL_DISK``, ``<vm moref id>:<device key>``)
    (PbmQueryAssociatedProfile)."""
    e = _endpoint(session)
    ref = pbm.ServerObjectRef(objectType=object_type, key=key,
                              serverUuid=session.about.instanceUuid)
    return [p.uniqueId for p in e.call(
        lambda: e.content.profileManager.PbmQueryAssociatedProfile(ref))]
