"""The vSphere boundary (doc/source/architecture.rst, "The vSphere
boundary"): only ``vcdriver/vsphere/`` calls methods of vSphere's managed
objects, waits for tasks and reads pyVmomi's private reference attributes;
and it imports nothing of the driver above it but ``vcdriver.exception``.

Read from the source (ast), so a call on a path the other unit tests do
not run is caught as well.
"""

import ast
import pathlib

from pyVmomi import VmomiSupport

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'vcdriver'
BOUNDARY = PACKAGE / 'vsphere'
# What vsphere/ may import from the driver: the errors it raises.
BOUNDARY_IMPORTS = {'vcdriver.exception'}
# pyVmomi's private attributes of a managed object reference
# (vsphere.props.moid and moref read them).
PRIVATE_REF_ATTRS = {'_moId', '_stub'}
# Our own task wait (vsphere/session.py).
TASK_WAIT = 'wait_for_task'


def _vsphere_methods():
    """The wsdl names of every method of every managed object type that
    pyVmomi knows (vim, vmodl, pbm, ...)."""
    names = set()
    for definition in VmomiSupport._managedDefMap.values():
        for method in definition[5] or ():
            names.add(method[1])
    return names


VSPHERE_METHODS = _vsphere_methods()


def _modules():
    return sorted(p for p in PACKAGE.rglob('*.py')
                  if '__pycache__' not in p.parts)


def _inside(path):
    return BOUNDARY in path.parents


def crossings(tree):
    """(line, what) of every vSphere method call, task wait and private
    reference read in a module's tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func,
                                                     ast.Attribute):
            name = node.func.attr
            if name.endswith('_Task') or name in VSPHERE_METHODS:
                found.append((node.lineno, 'calls %s()' % name))
            elif name == TASK_WAIT:
                found.append((node.lineno, 'waits for a task (%s)' % name))
        elif (isinstance(node, ast.Attribute) and
              node.attr in PRIVATE_REF_ATTRS):
            found.append((node.lineno, 'reads .%s' % node.attr))
    return sorted(found)


def driver_imports(tree):
    """(line, module) of every vcdriver module a tree imports."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split('.')[0] == 'vcdriver']
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split('.')[0] == 'vcdriver'):
            found += [(node.lineno, '%s.%s' % (node.module, a.name))
                      for a in node.names]
    return found


def _parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def test_the_method_list_is_pyvmomis():
    # Guards the check below against a pyVmomi that keeps its types
    # elsewhere: an empty list would let every call through.
    assert {'ReconfigVM_Task', 'ShutdownGuest', 'FindByUuid',
            'RescanHba', 'RetrievePropertiesEx'} <= VSPHERE_METHODS


def test_the_check_sees_a_crossing():
    tree = ast.parse('def f(session, vm):\n'
                     '    session.wait_for_task(vm.PowerOnVM_Task())\n'
                     '    vm.ShutdownGuest()\n'
                     '    return vm._moId\n')
    assert crossings(tree) == [(2, 'calls PowerOnVM_Task()'),
                               (2, 'waits for a task (wait_for_task)'),
                               (3, 'calls ShutdownGuest()'),
                               (4, 'reads ._moId')]


def test_only_vsphere_calls_vsphere():
    modules = [p for p in _modules() if not _inside(p)]
    assert len(modules) > 20
    found = ['%s:%d: %s' % (p.relative_to(ROOT), line, what)
             for p in modules for line, what in crossings(_parse(p))]
    assert not found, (
        'vSphere calls outside vcdriver/vsphere/ (put them in the module '
        'of the object they act on there, see "The vSphere boundary" in '
        'doc/source/architecture.rst):\n' + '\n'.join(found))


def test_vsphere_imports_nothing_above_it():
    modules = [p for p in _modules() if _inside(p)]
    assert len(modules) > 5
    found = ['%s:%d: imports %s' % (p.relative_to(ROOT), line, name)
             for p in modules for line, name in driver_imports(_parse(p))
             if not name.startswith('vcdriver.vsphere.') and
             name not in BOUNDARY_IMPORTS]
    assert not found, '\n'.join(found)
