package main

import (
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func travSpec(name, typ, path string, sel ...types.BaseSelectionSpec) *types.TraversalSpec {
	skip := false
	return &types.TraversalSpec{SelectionSpec: types.SelectionSpec{Name: name}, Type: typ, Path: path, Skip: &skip, SelectSet: sel}
}

func selSpec(name string) *types.SelectionSpec { return &types.SelectionSpec{Name: name} }

// osloSpec is oslo.vmware's vim_util.build_recursive_traversal_spec.
func osloSpec() *types.TraversalSpec {
	rp := []types.BaseSelectionSpec{selSpec("rp_to_rp"), selSpec("rp_to_vm")}
	return travSpec("visitFolders", "Folder", "childEntity", selSpec("visitFolders"),
		travSpec("h_to_vm", "HostSystem", "vm", selSpec("visitFolders")),
		travSpec("dc_to_hf", "Datacenter", "hostFolder", selSpec("visitFolders")),
		travSpec("dc_to_vmf", "Datacenter", "vmFolder", selSpec("visitFolders")),
		travSpec("dc_to_netf", "Datacenter", "networkFolder", selSpec("visitFolders")),
		travSpec("dc_to_df", "Datacenter", "datastoreFolder", selSpec("visitFolders")),
		travSpec("cr_to_ds", "ComputeResource", "datastore"),
		travSpec("cr_to_h", "ComputeResource", "host"),
		travSpec("cr_to_rp", "ComputeResource", "resourcePool", rp...),
		travSpec("ccr_to_h", "ClusterComputeResource", "host"),
		travSpec("ccr_to_ds", "ClusterComputeResource", "datastore"),
		travSpec("ccr_to_rp", "ClusterComputeResource", "resourcePool", rp...),
		travSpec("rp_to_rp", "ResourcePool", "resourcePool", rp...),
		travSpec("rp_to_vm", "ResourcePool", "vm", rp...))
}

func TestTypedTraversal(t *testing.T) {
	m := simulator.VPX()
	m.Machine = 2
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	ctx := &simulator.Context{Map: m.Map()}
	root := m.ServiceContent.RootFolder

	// vcsim alone would follow rp_to_rp from a VM to its pool and back.
	specs, ok := typedSpecs(ctx, []types.PropertyFilterSpec{{
		PropSet:   []types.PropertySpec{{Type: "VirtualMachine", PathSet: []string{"name"}}},
		ObjectSet: []types.ObjectSpec{{Obj: root, SelectSet: []types.BaseSelectionSpec{osloSpec()}}},
	}})
	if !ok {
		t.Fatal("oslo.vmware's spec not rewritten")
	}
	vms, seen := 0, map[types.ManagedObjectReference]bool{}
	for _, o := range specs[0].ObjectSet {
		if o.SelectSet != nil {
			t.Fatalf("selection specs left in %v", o)
		}
		if o.Obj.Type == "VirtualMachine" && !seen[o.Obj] {
			vms++
		}
		seen[o.Obj] = true
	}
	if want := len(m.Map().All("VirtualMachine")); vms != want {
		t.Fatalf("reached %d VMs, want %d", vms, want)
	}

	// A type-correct spec (vcdriver's hosts and their VMs) goes unchanged.
	hosts := m.Map().All("HostSystem")
	if _, ok := typedSpecs(ctx, []types.PropertyFilterSpec{{
		PropSet: []types.PropertySpec{{Type: "VirtualMachine", PathSet: []string{"name"}}},
		ObjectSet: []types.ObjectSpec{{Obj: hosts[0].Reference(),
			SelectSet: []types.BaseSelectionSpec{travSpec("children", "HostSystem", "vm")}}},
	}}); ok {
		t.Fatal("type-correct spec rewritten")
	}
}
