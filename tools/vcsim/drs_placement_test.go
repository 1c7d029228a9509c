package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// With two of a cluster's three hosts in maintenance, every VM created
// into the cluster without a host lands on the third and powers on (vcsim
// alone picks among all three: all of ten there would be a 1 in 3^10).
func TestCreateVMSkipsHostsInMaintenance(t *testing.T) {
	v := newTestVCenter(t, "-hosts-per-cluster", "3")
	ctx := context.Background()
	finder := find.NewFinder(v.c.Client, true)
	hosts, err := finder.HostSystemList(ctx, "/DC0/host/DC0_C0/*")
	if err != nil || len(hosts) != 3 {
		t.Fatalf("hosts: %v %v", hosts, err)
	}
	for _, h := range hosts[:2] {
		task, err := h.EnterMaintenanceMode(ctx, 0, false, nil)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources")
	if err != nil {
		t.Fatal(err)
	}
	folder, err := finder.Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		spec := types.VirtualMachineConfigSpec{
			Name: fmt.Sprintf("drs-%d", i), GuestId: "otherGuest", NumCPUs: 1, MemoryMB: 64,
			Files: &types.VirtualMachineFileInfo{VmPathName: "[nfs0]"},
		}
		task, err := folder.CreateVM(ctx, spec, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		vm := object.NewVirtualMachine(v.c.Client, info.Result.(types.ManagedObjectReference))
		var props mo.VirtualMachine
		if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.host"}, &props); err != nil {
			t.Fatal(err)
		}
		if *props.Runtime.Host != hosts[2].Reference() {
			t.Fatalf("VM %d placed on %v, a host in maintenance", i, props.Runtime.Host)
		}
		if task, err = vm.PowerOn(ctx); err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("power on VM %d: %v", i, err)
		}
	}
}
