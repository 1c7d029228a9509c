package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// guestTools makes VMware Tools look installed and running in every
// powered-on VM (-guest-tools). Stock vcsim reports tools running only for
// container-backed VMs, so RebootGuest always fails with ToolsUnavailable
// and tools-dependent code paths cannot be tested.
//
// It is a Registry handler: it sees every property change, and when a VM's
// runtime.powerState changes it updates guest.toolsStatus,
// guest.toolsRunningStatus and guest.guestState (PropertyCollector
// listeners see those changes too).
type guestTools struct{}

func (guestTools) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VcdriverGuestTools", Value: "guestTools"}
}

func (guestTools) PutObject(*simulator.Context, mo.Reference) {}

func (guestTools) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

func (guestTools) UpdateObject(ctx *simulator.Context, obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if ref.Type != "VirtualMachine" || ctx == nil {
		return
	}
	for _, c := range changes {
		if c.Name != "runtime.powerState" {
			continue
		}
		vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok {
			return
		}
		running := c.Val == types.VirtualMachinePowerStatePoweredOn
		toolsStatus, runningStatus, guestState := types.VirtualMachineToolsStatusToolsNotRunning,
			types.VirtualMachineToolsRunningStatusGuestToolsNotRunning, "notRunning"
		if running {
			toolsStatus, runningStatus, guestState = types.VirtualMachineToolsStatusToolsOk,
				types.VirtualMachineToolsRunningStatusGuestToolsRunning, "running"
		}
		// The caller holds the VM's lock; Update applies the changes and
		// notifies the other handlers (this one ignores them).
		ctx.Map.Update(ctx, vm, []types.PropertyChange{
			{Name: "guest.toolsStatus", Val: toolsStatus},
			{Name: "guest.toolsRunningStatus", Val: string(runningStatus)},
			{Name: "guest.toolsVersionStatus2", Val: string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)},
			{Name: "guest.guestState", Val: guestState},
			{Name: "summary.guest.toolsStatus", Val: toolsStatus},
			{Name: "summary.guest.toolsRunningStatus", Val: string(runningStatus)},
		})
		return
	}
}
