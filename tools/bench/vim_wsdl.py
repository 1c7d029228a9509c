"""A vSphere (vim25) WSDL for oslo.vmware's suds client, made locally.

vcsim serves no WSDL (``/sdk/vimService.wsdl``) and pyVmomi ships none, so
the in-tree driver's session cannot start against vcsim. The pieces exist
elsewhere, though: oslo.vmware ships the vim25 type schemas
(``oslo_vmware/wsdl/<version>/vim-types.xsd`` with ``core-types.xsd``,
``query-types.xsd``, ``reflect-types.xsd``, for its PBM client), and
pyVmomi knows every vim25 method with its parameters and result. From them
:func:`write` makes what vCenter serves next to them: ``vim-messagetypes
.xsd`` (a ``<Method>RequestType`` per method), ``vim.wsdl`` (elements,
messages, port type, document/literal binding) and ``vimService.wsdl``
(the service at a given SOAP address). Methods whose types the schemas do
not define (newer than the schemas) are left out.

Used only by the bench (tools/bench/inventory_refresh.py) to run the
in-tree driver for comparison.
"""

import glob
import os
import re
import shutil
from xml.sax import saxutils

SCHEMAS = ('vim-types.xsd', 'core-types.xsd', 'query-types.xsd',
           'reflect-types.xsd')
VIM25 = 'urn:vim25'
SOAP_ACTION = 'urn:vim25/8.0.0.0'

# pyVmomi wsdl names of primitives -> XML Schema types.
PRIMITIVES = {
    'string': 'xsd:string', 'boolean': 'xsd:boolean', 'byte': 'xsd:byte',
    'short': 'xsd:short', 'int': 'xsd:int', 'long': 'xsd:long',
    'float': 'xsd:float', 'double': 'xsd:double',
    'dateTime': 'xsd:dateTime', 'base64Binary': 'xsd:base64Binary',
    'anyURI': 'xsd:anyURI', 'anyType': 'xsd:anyType',
    'TypeName': 'xsd:string', 'PropertyPath': 'xsd:string',
    'MethodName': 'xsd:string',
}
F_OPTIONAL = 4


def schema_dir():
    """The newest oslo.vmware schema directory with vim-types.xsd."""
    import oslo_vmware
    base = os.path.join(os.path.dirname(oslo_vmware.__file__), 'wsdl')
    found = [d for d in glob.glob(os.path.join(base, '*'))
             if os.path.exists(os.path.join(d, 'vim-types.xsd'))]
    if not found:
        return None

    def version(path):
        return tuple(int(x) for x in re.findall(r'\d+',
                                                os.path.basename(path)))
    return max(found, key=version)


def defined_types(directory):
    """Names of the complex and simple types the schemas define."""
    names = set()
    for name in SCHEMAS:
        with open(os.path.join(directory, name)) as f:
            names.update(re.findall(r'<(?:complexType|simpleType) '
                                    r'name="([^"]+)"', f.read()))
    return names


def xsd_type(t, known):
    """(qualified XSD type, is array) of a pyVmomi type, or None."""
    from pyVmomi import VmomiSupport as vs
    array = False
    if isinstance(t, type) and issubclass(t, vs.Array):
        t, array = t.Item, True
    if isinstance(t, type) and issubclass(t, vs.ManagedObject):
        return 'vim25:ManagedObjectReference', array
    name = vs.GetWsdlName(t)
    if name in PRIMITIVES:
        return PRIMITIVES[name], array
    if name.startswith('ArrayOf'):
        return None
    if name in known:
        return 'vim25:' + name, array
    return None


def methods(known):
    """[(wsdl name, [(param, xsd type, array, optional)], result or None)]
    of every vim25 method the schemas can express, sorted by name."""
    from pyVmomi import VmomiSupport as vs
    out = {}
    for name in list(vs._managedDefMap):
        t = vs.GetVmodlType(name)
        if vs.GetWsdlNamespace(t._version) != VIM25:
            continue
        for info in t._methodInfo.values():
            if info.wsdlName in out:
                continue
            params = []
            for p in info.params:
                x = xsd_type(p.type, known)
                if x is None:
                    break
                params.append((p.name, x[0], x[1],
                               bool(p.flags & F_OPTIONAL)))
            else:
                result = None
                if info.result is not None and info.result is not type(None):
                    result = xsd_type(info.result, known)
                    if result is None:
                        continue
                    result = result + (bool(info.resultFlags & F_OPTIONAL),)
                out[info.wsdlName] = (params, result)
    return [(n,) + out[n] for n in sorted(out)]


def _element(name, xtype, array, optional, indent):
    attrs = ['name="%s"' % name, 'type="%s"' % xtype]
    if optional or array:
        attrs.append('minOccurs="0"')
    if array:
        attrs.append('maxOccurs="unbounded"')
    return '%s<element %s />' % (indent, ' '.join(attrs))


def message_types(ops):
    lines = ['<?xml version="1.0" encoding="UTF-8" ?>',
             '<schema targetNamespace="urn:vim25"',
             '   xmlns="http://www.w3.org/2001/XMLSchema"',
             '   xmlns:vim25="urn:vim25"',
             '   xmlns:xsd="http://www.w3.org/2001/XMLSchema"',
             '   elementFormDefault="qualified">',
             '   <include schemaLocation="vim-types.xsd" />']
    for name, params, _result in ops:
        lines.append('   <complexType name="%sRequestType">' % name)
        lines.append('      <sequence>')
        lines.append('         <element name="_this" '
                     'type="vim25:ManagedObjectReference" />')
        for p in params:
            lines.append(_element(*p, indent='         '))
        lines.append('      </sequence>')
        lines.append('   </complexType>')
    lines.append('</schema>')
    return '\n'.join(lines) + '\n'


def wsdl(ops, fault_types):
    lines = ['<?xml version="1.0" encoding="UTF-8" ?>',
             '<definitions targetNamespace="urn:vim25"',
             '   xmlns="http://schemas.xmlsoap.org/wsdl/"',
             '   xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"',
             '   xmlns:vim25="urn:vim25"',
             '   xmlns:xsd="http://www.w3.org/2001/XMLSchema">',
             '   <types>',
             '      <schema targetNamespace="urn:vim25"',
             '         xmlns="http://www.w3.org/2001/XMLSchema"',
             '         xmlns:vim25="urn:vim25"',
             '         xmlns:xsd="http://www.w3.org/2001/XMLSchema"',
             '         elementFormDefault="qualified">',
             '         <include schemaLocation="vim-messagetypes.xsd" />']
    for fault in sorted(fault_types):
        lines.append('         <element name="%sFault" type="vim25:%s" />'
                     % (fault, fault))
    for name, _params, result in ops:
        lines.append('         <element name="%s" type="vim25:%sRequestType"'
                     ' />' % (name, name))
        lines.append('         <element name="%sResponse">' % name)
        lines.append('            <complexType>')
        lines.append('               <sequence>')
        if result is not None:
            xtype, array, optional = result
            lines.append(_element('returnval', xtype, array, optional,
                                  '                  '))
        lines.append('               </sequence>')
        lines.append('            </complexType>')
        lines.append('         </element>')
    lines += ['      </schema>', '   </types>']
    for name, _params, _result in ops:
        lines += ['   <message name="%sRequestMsg">' % name,
                  '      <part name="parameters" element="vim25:%s" />'
                  % name, '   </message>',
                  '   <message name="%sResponseMsg">' % name,
                  '      <part name="parameters" element="vim25:%sResponse"'
                  ' />' % name, '   </message>']
    lines.append('   <portType name="VimPortType">')
    for name, _params, _result in ops:
        lines += ['      <operation name="%s">' % name,
                  '         <input message="vim25:%sRequestMsg" />' % name,
                  '         <output message="vim25:%sResponseMsg" />' % name,
                  '      </operation>']
    lines.append('   </portType>')
    lines += ['   <binding name="VimBinding" type="vim25:VimPortType">',
              '      <soap:binding style="document" '
              'transport="http://schemas.xmlsoap.org/soap/http" />']
    for name, _params, _result in ops:
        lines += ['      <operation name="%s">' % name,
                  '         <soap:operation soapAction="%s" />'
                  % SOAP_ACTION,
                  '         <input><soap:body use="literal" /></input>',
                  '         <output><soap:body use="literal" /></output>',
                  '      </operation>']
    lines += ['   </binding>', '</definitions>']
    return '\n'.join(lines) + '\n'


def service(soap_url):
    return '\n'.join([
        '<?xml version="1.0" encoding="UTF-8" ?>',
        '<definitions targetNamespace="urn:vimService"',
        '   xmlns="http://schemas.xmlsoap.org/wsdl/"',
        '   xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"',
        '   xmlns:interface="urn:vim25">',
        '   <import location="vim.wsdl" namespace="urn:vim25" />',
        '   <service name="VimService">',
        '      <port binding="interface:VimBinding" name="VimPort">',
        '         <soap:address location=%s />'
        % saxutils.quoteattr(soap_url),
        '      </port>',
        '   </service>',
        '</definitions>']) + '\n'


def fault_types(directory, known):
    """Types deriving, by name, from MethodFault: vCenter's *Fault
    elements (suds reads a fault's detail by them)."""
    with open(os.path.join(directory, 'vim-types.xsd')) as f:
        text = f.read()
    bases = dict(re.findall(r'<complexType name="([^"]+)">\s*<complexContent>'
                            r'\s*<extension base="vim25:([^"]+)"', text))
    out = set()
    for name in known:
        seen = name
        while seen in bases:
            seen = bases[seen]
        if seen == 'MethodFault' or name == 'MethodFault':
            out.add(name)
    return out


def write(directory, soap_url):
    """Write the WSDL set into ``directory``; return the vimService.wsdl
    ``file://`` URL and the number of methods. Raises LookupError when
    oslo.vmware ships no vim25 schemas."""
    src = schema_dir()
    if src is None:
        raise LookupError('oslo.vmware ships no vim-types.xsd')
    os.makedirs(directory, exist_ok=True)
    for name in SCHEMAS:
        shutil.copy(os.path.join(src, name), os.path.join(directory, name))
    known = defined_types(src)
    ops = methods(known)
    with open(os.path.join(directory, 'vim-messagetypes.xsd'), 'w') as f:
        f.write(message_types(ops))
    with open(os.path.join(directory, 'vim.wsdl'), 'w') as f:
        f.write(wsdl(ops, fault_types(src, known)))
    path = os.path.join(directory, 'vimService.wsdl')
    with open(path, 'w') as f:
        f.write(service(soap_url))
    return 'file://' + os.path.abspath(path), len(ops), os.path.basename(src)
