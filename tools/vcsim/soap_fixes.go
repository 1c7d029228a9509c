package main

import (
	"bytes"
	"regexp"
)

// SOAP-level fixes for places where vcsim answers differently from vCenter
// in ways that break pyVmomi or Nova. Each is a plain []byte -> []byte
// rewrite of a request or response body, chained by soapRequestFixes and
// soapResponseFixes (see extensions.go). Tests: soap_fixes_test.go.

var (
	soapRequestFixes  = soapRequestFilter(chainRewrites(defaultDestDatacenter, dropCopyDiskDestSpec))
	soapResponseFixes = soapResponseFilter(chainRewrites(dropNonEntityTaskEntity, fillEmptyEnums))
)

func chainRewrites(fs ...func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		for _, f := range fs {
			b = f(b)
		}
		return b
	}
}

var soapMethodRE = regexp.MustCompile(`<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)[\s>/]`)

// soapMethod returns the name of the method a request body calls.
func soapMethod(body []byte) string {
	if m := soapMethodRE.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

// --- requests ----------------------------------------------------------

// destDatacenterParam maps the copy and move methods to the name of their
// destination datacenter parameter.
var destDatacenterParam = map[string]string{
	"CopyVirtualDisk_Task":   "destDatacenter",
	"MoveVirtualDisk_Task":   "destDatacenter",
	"CopyDatastoreFile_Task": "destinationDatacenter",
	"MoveDatastoreFile_Task": "destinationDatacenter",
}

var sourceDatacenterRE = regexp.MustCompile(`<([\w-]+:)?sourceDatacenter(\s[^>]*)?>([^<]*)</(?:[\w-]+:)?sourceDatacenter>`)

// defaultDestDatacenter fills in the destination datacenter of the copy
// and move calls when the client left it out: vCenter then takes the
// source datacenter, vcsim answers InvalidArgument(dc). Nova's
// vm_util.copy_virtual_disk, for one, sends only sourceDatacenter.
func defaultDestDatacenter(body []byte) []byte {
	param, ok := destDatacenterParam[soapMethod(body)]
	if !ok || bytes.Contains(body, []byte(param+">")) || bytes.Contains(body, []byte(param+" ")) {
		return body
	}
	src := sourceDatacenterRE.FindSubmatchIndex(body)
	if src == nil {
		return body
	}
	group := func(i int) []byte { // nil when group i did not match
		if src[2*i] < 0 {
			return nil
		}
		return body[src[2*i]:src[2*i+1]]
	}
	prefix, attrs, value := group(1), group(2), group(3)

	var out bytes.Buffer
	out.Write(body[:src[1]])
	out.WriteString("<")
	out.Write(prefix)
	out.WriteString(param)
	out.Write(attrs)
	out.WriteString(">")
	out.Write(value)
	out.WriteString("</")
	out.Write(prefix)
	out.WriteString(param)
	out.WriteString(">")
	out.Write(body[src[1]:])
	return out.Bytes()
}

var destSpecRE = regexp.MustCompile(`<([\w-]+:)?destSpec[\s>][\s\S]*?</([\w-]+:)?destSpec>`)

// dropCopyDiskDestSpec removes CopyVirtualDisk_Task's destSpec unless it
// carries a crypto spec. With a destSpec, vcsim re-writes both copied files
// as descriptors, so the -flat.vmdk bytes are replaced by a text
// descriptor; apart from crypto keys it ignores the spec (adapter type,
// disk type) anyway.
func dropCopyDiskDestSpec(body []byte) []byte {
	if soapMethod(body) != "CopyVirtualDisk_Task" {
		return body
	}
	return destSpecRE.ReplaceAllFunc(body, func(m []byte) []byte {
		if bytes.Contains(m, []byte("crypto")) {
			return m
		}
		return nil
	})
}

// --- responses ---------------------------------------------------------

var taskEntityRE = regexp.MustCompile(`<entity type="([A-Za-z]+)">[^<]*</entity>`)

// managedEntityTypes are the vim25 ManagedEntity subtypes.
var managedEntityTypes = map[string]bool{
	"ManagedEntity":                  true,
	"Folder":                         true,
	"Datacenter":                     true,
	"ComputeResource":                true,
	"ClusterComputeResource":         true,
	"HostSystem":                     true,
	"ResourcePool":                   true,
	"VirtualApp":                     true,
	"VirtualMachine":                 true,
	"Datastore":                      true,
	"StoragePod":                     true,
	"Network":                        true,
	"DistributedVirtualPortgroup":    true,
	"OpaqueNetwork":                  true,
	"DistributedVirtualSwitch":       true,
	"VmwareDistributedVirtualSwitch": true,
}

// dropNonEntityTaskEntity drops TaskInfo.entity when it names an object
// that is not a ManagedEntity. vcsim sets it to the object the task runs
// on, so the tasks of VirtualDiskManager, FileManager, snapshots, ... carry
// e.g. <entity type="VirtualDiskManager">, which pyVmomi refuses to
// deserialize (For "entity" expected type vim.ManagedEntity): task.info
// could not be read at all. entityName is left as vcsim sets it.
func dropNonEntityTaskEntity(body []byte) []byte {
	if !bytes.Contains(body, []byte(`<entity type="`)) {
		return body
	}
	return taskEntityRE.ReplaceAllFunc(body, func(m []byte) []byte {
		if managedEntityTypes[string(taskEntityRE.FindSubmatch(m)[1])] {
			return m
		}
		return nil
	})
}

// emptyEnumDefaults are enum properties vcsim leaves as "", with the value
// vCenter reports for them. pyVmomi cannot deserialize an empty enum, so
// without this vm.runtime and vm.summary could not be read.
var emptyEnumDefaults = []struct{ element, xsiType, value string }{
	{"faultToleranceState", "VirtualMachineFaultToleranceState", "notConfigured"},
	{"recordReplayState", "VirtualMachineRecordReplayState", "inactive"},
}

var emptyValRE = regexp.MustCompile(`<val ([\w-]+:type)="(\w+)"></val>`)

// fillEmptyEnums fills in the values of emptyEnumDefaults, whether they
// come as an element of their parent (<faultToleranceState></...>) or as a
// property value (<val xsi:type="VirtualMachineFaultToleranceState"></val>).
func fillEmptyEnums(body []byte) []byte {
	for _, e := range emptyEnumDefaults {
		empty := []byte("<" + e.element + "></" + e.element + ">")
		if bytes.Contains(body, empty) {
			body = bytes.ReplaceAll(body, empty, []byte("<"+e.element+">"+e.value+"</"+e.element+">"))
		}
	}
	if !bytes.Contains(body, []byte("\"></val>")) {
		return body
	}
	return emptyValRE.ReplaceAllFunc(body, func(m []byte) []byte {
		sub := emptyValRE.FindSubmatch(m)
		for _, e := range emptyEnumDefaults {
			if string(sub[2]) == e.xsiType {
				return []byte("<val " + string(sub[1]) + `="` + e.xsiType + `">` + e.value + "</val>")
			}
		}
		return m
	})
}
