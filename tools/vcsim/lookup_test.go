package main

import (
	"context"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// TestLookup: the object as its type, or ManagedObjectNotFound on the ref
// asked for when it is gone or of another type.
func TestLookup(t *testing.T) {
	m := simulator.VPX()
	defer m.Remove()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	ctx := &simulator.Context{Map: m.Map(), Context: context.Background()}
	vm := m.Map().Any("VirtualMachine").(*simulator.VirtualMachine)

	if got, fault := lookup[*simulator.VirtualMachine](ctx, vm.Self); fault != nil || got != vm {
		t.Fatalf("lookup of %v: %v, %v", vm.Self, got, fault)
	}
	gone := types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-gone"}
	for _, ref := range []types.ManagedObjectReference{gone, *vm.Runtime.Host} {
		got, fault := lookup[*simulator.VirtualMachine](ctx, ref)
		if got != nil || fault == nil {
			t.Fatalf("lookup of %v: %v, %v", ref, got, fault)
		}
		if nf, ok := fault.VimFault().(*types.ManagedObjectNotFound); !ok || nf.Obj != ref {
			t.Fatalf("lookup of %v: fault %#v, want ManagedObjectNotFound on it", ref, fault.VimFault())
		}
	}
}
