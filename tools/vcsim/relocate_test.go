package main

import (
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func TestRelocateRelistsAndRefuses(t *testing.T) {
	m := simulator.VPX()
	m.Cluster = 2
	m.ClusterHost = 1
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	ctx := &simulator.Context{Map: m.Map()}
	vm := m.Map().Any("VirtualMachine").(*simulator.VirtualMachine)
	var dest *simulator.HostSystem
	for _, h := range m.Map().All("HostSystem") {
		if h.Reference() != *vm.Runtime.Host {
			dest = m.Map().Get(h.Reference()).(*simulator.HostSystem)
			break
		}
	}
	old := m.Map().Get(*vm.Runtime.Host).(*simulator.HostSystem)
	call := &simulator.Method{Name: "RelocateVM_Task", This: vm.Self,
		Body: &types.RelocateVM_Task{This: vm.Self,
			Spec: types.VirtualMachineRelocateSpec{Host: &dest.Self}}}

	f := newFaults(nil, m)
	rule, err := decodeRule(strings.NewReader(`{"kind": "soap_fault", "method": "RelocateVM_Task",
		"object": "` + vm.Config.InstanceUuid + `", "fault": "MigrationNotReady", "message": "no"}`))
	if err != nil {
		t.Fatal(err)
	}
	f.add(rule)
	fault, ok := f.check(ctx, call).(*types.MigrationNotReady)
	if !ok || fault.Reason != "no" {
		t.Fatalf("armed relocation not refused: %#v", fault)
	}
	if f.check(ctx, call) != nil {
		t.Fatal("refused more times than armed")
	}

	relistRelocated(ctx, call)
	if simulator.FindReference(old.Vm, vm.Self) != nil {
		t.Fatal("VM still listed under its old host")
	}
	if simulator.FindReference(dest.Vm, vm.Self) == nil {
		t.Fatal("VM not listed under its new host")
	}
}
