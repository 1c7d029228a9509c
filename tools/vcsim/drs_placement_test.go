package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// ruleCluster is a launcher's cluster of three hosts with count VMs all
// created on its first host, in one anti-affinity rule.
type ruleCluster struct {
	cluster *object.ClusterComputeResource
	hosts   []*object.HostSystem
	vms     []*object.VirtualMachine
}

func newRuleCluster(t *testing.T, count int, mandatory bool) *ruleCluster {
	t.Helper()
	ctx := context.Background()
	v := newTestVCenter(t, "-hosts-per-cluster", "3")
	finder := find.NewFinder(v.c.Client, true)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		t.Fatal(err)
	}
	finder.SetDatacenter(dc)
	rc := &ruleCluster{}
	if rc.cluster, err = finder.ClusterComputeResource(ctx, "DC0_C0"); err != nil {
		t.Fatal(err)
	}
	if rc.hosts, err = rc.cluster.Hosts(ctx); err != nil || len(rc.hosts) != 3 {
		t.Fatalf("hosts: %v %v", rc.hosts, err)
	}
	pool, err := rc.cluster.ResourcePool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refs []types.ManagedObjectReference
	for i := 0; i < count; i++ {
		created, err := folders.VmFolder.CreateVM(ctx, types.VirtualMachineConfigSpec{
			Name: fmt.Sprintf("member-%d", i), GuestId: "otherGuest",
			Files: &types.VirtualMachineFileInfo{VmPathName: "[nfs0]"},
		}, pool, rc.hosts[0])
		if err != nil {
			t.Fatal(err)
		}
		info, err := created.WaitForResult(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ref := info.Result.(types.ManagedObjectReference)
		refs = append(refs, ref)
		rc.vms = append(rc.vms, object.NewVirtualMachine(v.c.Client, ref))
	}
	on := true
	reconfigure, err := rc.cluster.Reconfigure(ctx, &types.ClusterConfigSpecEx{
		RulesSpec: []types.ClusterRuleSpec{{
			ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
			Info: &types.ClusterAntiAffinityRuleSpec{
				ClusterRuleInfo: types.ClusterRuleInfo{Name: "group", Enabled: &on, Mandatory: &mandatory},
				Vm:              refs,
			},
		}},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := reconfigure.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *ruleCluster) powerOn(t *testing.T, i int) error {
	t.Helper()
	started, err := rc.vms[i].PowerOn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return started.Wait(context.Background())
}

// where is the VM's host and power state, and whether its host lists it.
func (rc *ruleCluster) where(t *testing.T, i int) (types.ManagedObjectReference, types.VirtualMachinePowerState, bool) {
	t.Helper()
	ctx := context.Background()
	var vm mo.VirtualMachine
	if err := rc.vms[i].Properties(ctx, rc.vms[i].Reference(), []string{"runtime"}, &vm); err != nil {
		t.Fatal(err)
	}
	var host mo.HostSystem
	if err := rc.vms[i].Properties(ctx, *vm.Runtime.Host, []string{"vm"}, &host); err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, ref := range host.Vm {
		listed = listed || ref == rc.vms[i].Reference()
	}
	return *vm.Runtime.Host, vm.Runtime.PowerState, listed
}

func TestMandatoryAntiAffinityPlacesEachVMOnAHostOfItsOwn(t *testing.T) {
	rc := newRuleCluster(t, 4, true)
	// Host 1 in maintenance: DRS may not use it.
	entered, err := rc.hosts[1].EnterMaintenanceMode(context.Background(), 0, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := entered.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []types.ManagedObjectReference{rc.hosts[0].Reference(), rc.hosts[2].Reference()}
	for i, host := range want {
		if err := rc.powerOn(t, i); err != nil {
			t.Fatalf("power-on %d: %v", i, err)
		}
		got, state, listed := rc.where(t, i)
		if got != host || state != types.VirtualMachinePowerStatePoweredOn || !listed {
			t.Fatalf("VM %d on %v (%s, listed %v), want %v powered on", i, got, state, listed, host)
		}
	}
	// No host left: the power-on fails, the VM stays off where it was.
	err = rc.powerOn(t, 2)
	var failed task.Error
	if !errors.As(err, &failed) {
		t.Fatalf("third power-on: %v, want a failed task", err)
	}
	if _, ok := failed.Fault().(*types.RuleViolation); !ok {
		t.Fatalf("third power-on failed with %#v, want RuleViolation", failed.Fault())
	}
	if got, state, listed := rc.where(t, 2); got != rc.hosts[0].Reference() || state != types.VirtualMachinePowerStatePoweredOff || !listed {
		t.Fatalf("refused VM on %v (%s, listed %v)", got, state, listed)
	}
	// Out of maintenance, host 1 takes it; a member powered off frees
	// its host for the last one.
	exited, err := rc.hosts[1].ExitMaintenanceMode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := exited.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rc.powerOn(t, 2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := rc.where(t, 2); got != rc.hosts[1].Reference() {
		t.Fatalf("VM 2 on %v, want host 1", got)
	}
	off, err := rc.vms[0].PowerOff(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rc.powerOn(t, 3); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := rc.where(t, 3); got != rc.hosts[0].Reference() {
		t.Fatalf("VM 3 on %v, want host 0 (its member powered off)", got)
	}
}

func TestPreferredAntiAffinityLeavesPlacementAlone(t *testing.T) {
	rc := newRuleCluster(t, 2, false)
	for i := range rc.vms {
		if err := rc.powerOn(t, i); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := rc.where(t, i); got != rc.hosts[0].Reference() {
			t.Fatalf("VM %d moved to %v by a preferred rule", i, got)
		}
	}
}

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
