package main

import (
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// recordingHandler keeps every change announced for one object.
type recordingHandler struct {
	obj     types.ManagedObjectReference
	changes map[string]any
}

func (*recordingHandler) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "vcdriver", Value: "test-recorder"}
}

func (*recordingHandler) PutObject(*simulator.Context, mo.Reference)                    {}
func (*recordingHandler) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}
func (h *recordingHandler) UpdateObject(_ *simulator.Context, o mo.Reference, changes []types.PropertyChange) {
	if o.Reference() != h.obj {
		return
	}
	for _, c := range changes {
		h.changes[c.Name] = c.Val
	}
}

func TestReconfiguredSizeIsAnnounced(t *testing.T) {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	installHardwareNotifier(m)
	vm := m.Map().Any("VirtualMachine").(*simulator.VirtualMachine)
	rec := &recordingHandler{obj: vm.Self, changes: map[string]any{}}
	m.Map().AddHandler(rec)

	ctx := &simulator.Context{Map: m.Map()}
	vm.Config.Hardware.MemoryMB = 3072 // as vcsim's configure writes it
	m.Map().Update(ctx, vm, []types.PropertyChange{
		{Name: "config.changeVersion", Val: "2"}})

	if got := rec.changes["config.hardware.memoryMB"]; got != int32(3072) {
		t.Fatalf("memoryMB announced as %#v, want 3072", got)
	}
	if _, ok := rec.changes["config.hardware.numCPU"]; !ok {
		t.Fatal("numCPU not announced")
	}

	// Not for a VM that is not registered yet (being created).
	unborn := &mo.VirtualMachine{Config: vm.Config}
	unborn.Self = types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-unborn"}
	rec.obj, rec.changes = unborn.Self, map[string]any{}
	m.Map().Update(ctx, unborn, []types.PropertyChange{
		{Name: "config.changeVersion", Val: "1"}})
	if _, ok := rec.changes["config.hardware.memoryMB"]; ok {
		t.Fatal("announced the size of an unregistered VM")
	}
}
