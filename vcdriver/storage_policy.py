"""Storage policies (SPBM) of instances: which policy an instance gets,
and which datastores of its cluster satisfy it.

As in-tree: with ``[vmware] pbm_enabled`` an instance gets its flavor's
``vmware:storage_policy``, else ``[vmware] pbm_default_policy``; without
it, flavors' policies are ignored (logged here, silent in-tree). The
instance's files and disks go only on datastores vCenter's Storage Policy
service finds compatible, and the VM home and disks get the policy.
Unlike in-tree, ``[vmware] datastore_regex`` still applies: a datastore
must match it and satisfy the policy.
"""

import dataclasses

from oslo_log import log as logging

from vcdriver import conf
from vcdriver import exception
from vcdriver.vsphere import pbm
from vcdriver.vsphere import props

LOG = logging.getLogger(__name__)
CONF = conf.CONF

FLAVOR_SPEC = 'vmware:storage_policy'
DEFAULT_OPTION = '[vmware] pbm_default_policy'


@dataclasses.dataclass(frozen=True)
class Policy:
    """A policy in vCenter; ``source`` is what asked for it (the flavor
    spec or the default option), for messages."""
    name: str
    profile_id: str
    source: str = FLAVOR_SPEC


def wanted(specs, instance=None):
    """(policy name, source) the instance gets, or None."""
    if not CONF.vmware.pbm_enabled:
        if specs.storage_policy:
            LOG.warning('The flavor asks for storage policy %s (%s), but '
                        '[vmware] pbm_enabled is off: ignored, as by the '
                        'in-tree driver', specs.storage_policy, FLAVOR_SPEC,
                        instance=instance)
        return None
    if specs.storage_policy:
        return specs.storage_policy, FLAVOR_SPEC
    if CONF.vmware.pbm_default_policy:
        return CONF.vmware.pbm_default_policy, DEFAULT_OPTION
    return None


def policies(session):
    """{name: profile id} of vCenter's storage policies, in two calls."""
    return {p.name: p.profileId.uniqueId for p in pbm.retrieve_content(
        session, pbm.query_profile(session))}


def find(session, name, source=FLAVOR_SPEC, known=None):
    """The Policy of that name; InvalidSpec naming it if vCenter has
    none (the build aborts: no cluster of this vCenter could help)."""
    known = policies(session) if known is None else known
    if name not in known:
        raise exception.InvalidSpec(
            name=source, value=name,
            reason='vCenter has no storage policy of that name (its '
                   'policies: %s)' % (', '.join(sorted(known)) or 'none'))
    return Policy(name, known[name], source)


def for_instance(session, specs, instance=None):
    """The Policy the instance gets, checked to exist, or None."""
    asked = wanted(specs, instance)
    return find(session, *asked) if asked else None


def compatibility(session, policy, datastores):
    """([datastores that satisfy the policy], {name: why not} of the
    others), ``datastores`` being capacity.Datastore: one call for all."""
    answers = pbm.check_requirements(
        session, [props.moid(d.ref) for d in datastores], policy.profile_id)
    good, why = [], {}
    for d in datastores:
        errors = answers.get(props.moid(d.ref))
        if errors == []:
            good.append(d)
        else:
            why[d.name] = '; '.join(errors or ['not answered'])
    return good, why


def compatible_datastores(session, policy, state):
    """The cluster's datastores that satisfy the policy; InvalidSpec
    naming the policy when none does (the flavor and this cluster do not
    go together, as with a hardware version none of its hosts runs)."""
    good, why = compatibility(session, policy, state.datastores)
    if not good:
        raise exception.InvalidSpec(
            name=policy.source, value=policy.name,
            reason='no datastore of cluster %s satisfies this storage '
                   'policy (%s)' % (state.cluster.name, '; '.join(
                       '%s: %s' % item for item in sorted(why.items()))
                       or 'the cluster has no datastore'))
    return good


def check_config(session):
    """At start-up, as in-tree: ``[vmware] pbm_default_policy`` must name
    a policy vCenter has when ``pbm_enabled``. ``pbm_wsdl_location`` is
    not needed (pyVmomi has PBM's types built in)."""
    vmware = CONF.vmware
    if vmware.pbm_wsdl_location:
        LOG.info('[vmware] pbm_wsdl_location is not needed by this driver '
                 'and is ignored')
    if not vmware.pbm_enabled:
        return
    known = policies(session)
    if vmware.pbm_default_policy not in known:
        raise exception.InvalidConfig(
            reason='%s %r: vCenter has no storage policy of that name (its '
                   'policies: %s)' % (DEFAULT_OPTION,
                                      vmware.pbm_default_policy,
                                      ', '.join(sorted(known)) or 'none'))
    LOG.info("Storage policies on: instances get their flavor's %s, else "
             '%s', FLAVOR_SPEC, vmware.pbm_default_policy)
