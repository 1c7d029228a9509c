package main

import (
	"strings"
	"testing"
)

func envelope(method, params string) []byte {
	return []byte(`<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><` +
		method + ` xmlns="urn:vim25">` + params + `</` + method + `></soapenv:Body></soapenv:Envelope>`)
}

func TestSoapMethod(t *testing.T) {
	if m := soapMethod(envelope("CopyVirtualDisk_Task", "")); m != "CopyVirtualDisk_Task" {
		t.Fatalf("got %q", m)
	}
	suds := `<SOAP-ENV:Envelope><ns0:Header/><SOAP-ENV:Body><ns1:MoveDatastoreFile_Task><ns1:_this>x</ns1:_this></ns1:MoveDatastoreFile_Task></SOAP-ENV:Body></SOAP-ENV:Envelope>`
	if m := soapMethod([]byte(suds)); m != "MoveDatastoreFile_Task" {
		t.Fatalf("got %q", m)
	}
}

func TestDefaultDestDatacenter(t *testing.T) {
	in := envelope("CopyVirtualDisk_Task", `<_this type="VirtualDiskManager">vdm</_this><sourceName>[ds] a.vmdk</sourceName><sourceDatacenter type="Datacenter">datacenter-2</sourceDatacenter><destName>[ds] b.vmdk</destName>`)
	out := string(defaultDestDatacenter(in))
	if !strings.Contains(out, `<destDatacenter type="Datacenter">datacenter-2</destDatacenter>`) {
		t.Fatalf("not added: %s", out)
	}

	// already there: unchanged
	in = envelope("CopyVirtualDisk_Task", `<sourceDatacenter type="Datacenter">dc-2</sourceDatacenter><destDatacenter type="Datacenter">dc-3</destDatacenter>`)
	if out := defaultDestDatacenter(in); string(out) != string(in) {
		t.Fatalf("changed: %s", out)
	}

	// FileManager spelling, prefixed elements
	in = []byte(`<e:Body><ns1:CopyDatastoreFile_Task><ns1:sourceDatacenter xsi:type="ManagedObjectReference" type="Datacenter">dc-2</ns1:sourceDatacenter></ns1:CopyDatastoreFile_Task></e:Body>`)
	out = string(defaultDestDatacenter(in))
	if !strings.Contains(out, `<ns1:destinationDatacenter xsi:type="ManagedObjectReference" type="Datacenter">dc-2</ns1:destinationDatacenter>`) {
		t.Fatalf("not added: %s", out)
	}

	// other methods untouched
	in = envelope("DeleteVirtualDisk_Task", `<sourceDatacenter type="Datacenter">dc-2</sourceDatacenter>`)
	if out := defaultDestDatacenter(in); string(out) != string(in) {
		t.Fatalf("changed: %s", out)
	}
}

func TestDropCopyDiskDestSpec(t *testing.T) {
	spec := `<destSpec xsi:type="VirtualDiskSpec"><diskType>thin</diskType><adapterType>lsiLogic</adapterType></destSpec>`
	in := envelope("CopyVirtualDisk_Task", `<destName>[ds] b.vmdk</destName>`+spec+`<force>false</force>`)
	out := string(dropCopyDiskDestSpec(in))
	if strings.Contains(out, "destSpec") || !strings.Contains(out, "<force>false</force>") {
		t.Fatalf("got %s", out)
	}
	crypto := `<destSpec xsi:type="FileBackedVirtualDiskSpec"><crypto xsi:type="CryptoSpecEncrypt"></crypto></destSpec>`
	in = envelope("CopyVirtualDisk_Task", crypto)
	if out := dropCopyDiskDestSpec(in); string(out) != string(in) {
		t.Fatalf("crypto spec dropped: %s", out)
	}
}

func TestDropNonEntityTaskEntity(t *testing.T) {
	in := `<info><key>task-1</key><entity type="VirtualDiskManager">VirtualDiskManager</entity><entityName>x</entityName></info>` +
		`<info><entity type="VirtualMachine">vm-1</entity></info>`
	want := `<info><key>task-1</key><entityName>x</entityName></info>` +
		`<info><entity type="VirtualMachine">vm-1</entity></info>`
	if out := string(dropNonEntityTaskEntity([]byte(in))); out != want {
		t.Fatalf("got %s", out)
	}
}

func TestFillEmptyEnums(t *testing.T) {
	in := `<runtime><faultToleranceState></faultToleranceState><recordReplayState></recordReplayState></runtime>` +
		`<val XMLSchema-instance:type="VirtualMachineFaultToleranceState"></val><val XMLSchema-instance:type="xsd:string"></val>`
	want := `<runtime><faultToleranceState>notConfigured</faultToleranceState><recordReplayState>inactive</recordReplayState></runtime>` +
		`<val XMLSchema-instance:type="VirtualMachineFaultToleranceState">notConfigured</val><val XMLSchema-instance:type="xsd:string"></val>`
	if out := string(fillEmptyEnums([]byte(in))); out != want {
		t.Fatalf("got %s", out)
	}
}
