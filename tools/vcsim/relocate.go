package main

// RelocateVM_Task: the VM listed under its new host.
//
// vcsim's RelocateVM_Task changes the VM's host, pool and datastore
// properties (no file moves) but leaves the VM in its old host's and
// pool's "vm" lists, where a client reading VMs by traversal from hosts
// still finds it: the VM is moved to the new host's and pool's lists as
// the call is made.
//
// A refused vMotion is a fault rule (faults.go): {"kind": "soap_fault",
// "method": "RelocateVM_Task", "object": "<instanceUuid>", "fault":
// "MigrationNotReady", "message": "..."}. The faults hook runs before
// this one, so a refused relocation leaves the lists as they were.

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// installRelocateRelist hooks relistRelocated into the Registry's method
// Handler; it must run before serving.
func installRelocateRelist(m *simulator.Model) {
	routeMethods(m, relistRelocated)
}

// relistRelocated moves a VM being relocated to its new host's and pool's
// "vm" lists (vcsim leaves it in the old ones).
func relistRelocated(ctx *simulator.Context, method *simulator.Method) {
	if method.Name != "RelocateVM_Task" {
		return
	}
	req, ok := method.Body.(*types.RelocateVM_Task)
	if !ok {
		return
	}
	vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	if ref := req.Spec.Host; ref != nil && vm.Runtime.Host != nil && *vm.Runtime.Host != *ref {
		if old, ok := ctx.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
			ctx.Map.RemoveReference(ctx, old, &old.Vm, vm.Self)
		}
		if host, ok := ctx.Map.Get(*ref).(*simulator.HostSystem); ok {
			ctx.Map.AddReference(ctx, host, &host.Vm, vm.Self)
		}
	}
	if ref := req.Spec.Pool; ref != nil && vm.ResourcePool != nil && *vm.ResourcePool != *ref {
		if old, ok := ctx.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
			ctx.Map.RemoveReference(ctx, old, &old.Vm, vm.Self)
		}
		if pool, ok := ctx.Map.Get(*ref).(*simulator.ResourcePool); ok {
			ctx.Map.AddReference(ctx, pool, &pool.Vm, vm.Self)
		}
	}
}
