"""Batch reads of inventory through the PropertyCollector, and managed
object references.

Every read here is one RetrievePropertiesEx for any number of objects (plus
continuation pages): the driver never walks inventory object by object.
"""

from pyVmomi import vim
from pyVmomi import vmodl

PC = vmodl.query.PropertyCollector


def _collect(session, object_specs, prop_type, path_set, max_objects=None):
    """Run one retrieval; return {moref: {path: value}} over all pages.

    Pages are ``max_objects`` long, by default the session's
    ([vmware] maximum_objects).
    """
    if max_objects is None:
        max_objects = getattr(session, 'max_objects', None)
    collector = session.content.propertyCollector
    spec = PC.FilterSpec(
        objectSet=object_specs,
        propSet=[PC.PropertySpec(type=prop_type, pathSet=list(path_set))])
    return _retrieve(collector, spec, max_objects)


def _retrieve(collector, spec, max_objects):
    options = PC.RetrieveOptions(maxObjects=max_objects)
    result = collector.RetrievePropertiesEx([spec], options)
    found = {}
    while result is not None:
        for obj in result.objects:
            props = found.setdefault(obj.obj, {})
            for prop in obj.propSet or ():
                props[prop.name] = prop.val
        if not result.token:
            break
        result = collector.ContinueRetrievePropertiesEx(result.token)
    return found


def moid(ref):
    """A managed object's id (``vm-42``), for logs, node names and
    sorting; pyVmomi keeps it in a private attribute."""
    return ref._moId


def moref(obj_type, object_id, like):
    """A reference to the ``obj_type`` with id ``object_id`` on the
    connection of ``like`` (any managed object of the same vCenter)."""
    return obj_type(object_id, like._stub)


def objects_of_type(session, obj_type, path_set, root=None,
                    max_objects=None):
    """All objects of one type below ``root`` (default: the whole vCenter)."""
    return view_properties(session, root or session.content.rootFolder,
                           [obj_type], {obj_type: path_set}, max_objects)


def view_properties(session, root, view_types, type_paths,
                    max_objects=None):
    """Properties of the objects of ``view_types`` below ``root``, by type
    ({type: [paths]}, a subtype may have paths of its own), through one
    ContainerView and one retrieval."""
    traverse = PC.TraversalSpec(name='view', type=vim.view.ContainerView,
                                path='view', skip=False)
    if max_objects is None:
        max_objects = getattr(session, 'max_objects', None)
    for attempt in (1, 2):
        content = session.content
        view = content.viewManager.CreateContainerView(
            root, list(view_types), True)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True,
                                     selectSet=[traverse])],
            propSet=[PC.PropertySpec(type=t, pathSet=list(paths))
                     for t, paths in type_paths.items()])
        try:
            return _retrieve(content.propertyCollector, spec, max_objects)
        except vmodl.fault.ManagedObjectNotFound as e:
            # The session that made the view ended before it was read
            # (the session logged in again for the read, and the new one
            # has no such view): make it again, once.
            if (attempt == 2 or e.obj is None
                    or moid(e.obj) != moid(view)):
                raise
            view = None
        finally:
            if view is not None:
                view.DestroyView()


def properties(session, objects, obj_type, path_set, max_objects=None):
    """Properties of the given objects of one type, in one retrieval."""
    objects = list(objects)
    if not objects:
        return {}
    specs = [PC.ObjectSpec(obj=obj, skip=False) for obj in objects]
    return _collect(session, specs, obj_type, path_set, max_objects)


def properties_and_children(session, objects, obj_type, path_set, link,
                            child_type, child_path_set, max_objects=None):
    """Properties of the given objects and of the objects their ``link``
    property points at (hosts and their ``vm``s, say), in one retrieval.

    The children are reached by traversal, not named: one deleted between
    our reads is simply not there, where naming it would fail the whole
    read with ManagedObjectNotFound. Returns (objects', children's
    {moref: {path: value}}, {object: [child morefs]}).
    """
    objects = list(objects)
    if not objects:
        return {}, {}, {}
    hop = PC.TraversalSpec(name='children', type=obj_type, path=link,
                           skip=False)
    specs = [PC.ObjectSpec(obj=obj, skip=False, selectSet=[hop])
             for obj in objects]
    if max_objects is None:
        max_objects = getattr(session, 'max_objects', None)
    collector = session.content.propertyCollector
    spec = PC.FilterSpec(objectSet=specs, propSet=[
        PC.PropertySpec(type=obj_type, pathSet=list(path_set) + [link]),
        PC.PropertySpec(type=child_type, pathSet=list(child_path_set))])
    found = _retrieve(collector, spec, max_objects)
    parents = {o: p for o, p in found.items() if isinstance(o, obj_type)}
    children = {o: p for o, p in found.items() if isinstance(o, child_type)}
    links = {o: [c for c in p.pop(link, None) or () if c in children]
             for o, p in parents.items()}
    return parents, children, links
