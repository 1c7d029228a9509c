package main

// Property updates for a reconfigured VM's size.
//
// vCenter reports every changed property to a PropertyCollector filter
// (WaitForUpdatesEx). vcsim's ReconfigVM_Task changes the VM's hardware
// but announces only config.changeVersion and config.modified, so a
// client that keeps VM sizes current from updates (the driver's VM view)
// would never see a resize. Whenever a VM's config.changeVersion is
// announced, hardwareNotifier announces the properties a reconfiguration
// may have changed, with their current values, in the same call (the
// caller holds the VM's lock).

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// hardwareNotifier is a Registry handler; its reference only keys it in
// the Registry's handler table.
type hardwareNotifier struct {
	registry *simulator.Registry
}

func installHardwareNotifier(m *simulator.Model) {
	m.Map().AddHandler(&hardwareNotifier{registry: m.Map()})
}

func (*hardwareNotifier) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "vcdriver", Value: "hardware-notifier"}
}

func (*hardwareNotifier) PutObject(*simulator.Context, mo.Reference) {}

func (*hardwareNotifier) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

func (n *hardwareNotifier) UpdateObject(ctx *simulator.Context, o mo.Reference, changes []types.PropertyChange) {
	vm, ok := o.(*mo.VirtualMachine)
	// A VM being created is configured before it is registered; its
	// arrival (an "enter" update) carries the values it ends up with,
	// which an earlier announcement would overwrite with its defaults.
	if !ok || vm.Config == nil || n.registry.Get(vm.Self) == nil {
		return
	}
	for _, c := range changes {
		if c.Name == "config.changeVersion" {
			n.registry.Update(ctx, vm, hardwareChanges(vm))
			return
		}
	}
}

func hardwareChanges(vm *mo.VirtualMachine) []types.PropertyChange {
	hw := vm.Config.Hardware
	return []types.PropertyChange{
		{Name: "config.hardware.numCPU", Val: hw.NumCPU},
		{Name: "config.hardware.memoryMB", Val: hw.MemoryMB},
		{Name: "config.template", Val: vm.Config.Template},
	}
}
