"""A stub pyVmomi managed objects call into instead of a vCenter.

``FakeStub.handlers[wsdl method name] = fn(mo, *args)`` answers a call; every
call is kept in ``FakeStub.calls`` as ``(method, moref id, args)``.
"""

import types

from pyVmomi import vim
from pyVmomi import vmodl

PC = vmodl.query.PropertyCollector


class FakeStub:
    def __init__(self, **handlers):
        self.handlers = dict(handlers)
        self.calls = []

    def InvokeMethod(self, mo, info, args):
        self.calls.append((info.wsdlName, mo._moId, list(args)))
        try:
            handler = self.handlers[info.wsdlName]
        except KeyError:
            raise AssertionError('unexpected vSphere call %s on %s'
                                 % (info.wsdlName, mo._moId))
        return handler(mo, *args)

    def names(self):
        return [c[0] for c in self.calls]


def session(stub):
    """An object with what the driver reads of Session, on ``stub``."""
    content = types.SimpleNamespace(
        rootFolder=vim.Folder('group-d1', stub),
        propertyCollector=PC('propertyCollector', stub),
        viewManager=vim.view.ViewManager('ViewManager', stub))
    return types.SimpleNamespace(content=content)


def object_content(obj, **props):
    return PC.ObjectContent(obj=obj, propSet=[
        vmodl.DynamicProperty(name=k.replace('__', '.'), val=v)
        for k, v in props.items()])
