package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
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

// storageVMotionFixture is a launcher of two clusters of one host, nfs0 and
// the clusters' own datastores, with a powered-off VM "reloc" on
// ds-DC0_C0 whose disk is a linked clone of [ds-DC0_C0] cache/base.vmdk.
type storageVMotionFixture struct {
	inst *instance
	c    *govmomi.Client
	root string
	vm   *object.VirtualMachine
	want []byte // the disk's content: the base's bytes under the child's
}

const relocDiskBytes = 2 << 20

func newStorageVMotionFixture(t *testing.T) *storageVMotionFixture {
	t.Helper()
	root := t.TempDir()
	inst, err := start(parseFlags(flag.NewFlagSet("test", flag.ContinueOnError),
		[]string{"-clusters", "2", "-hosts-per-cluster", "1", "-nfs", "1", "-cluster-datastores", "-datastore-root", root}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.stop)
	f := &storageVMotionFixture{inst: inst, c: newTestClient(t, inst), root: root}

	// The base, as the image cache holds one: a descriptor and its flat extent.
	cache := filepath.Join(root, "ds-DC0_C0", "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	base := make([]byte, relocDiskBytes)
	copy(base, bytes.Repeat([]byte("base image "), 50000))
	descriptor := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n" +
		"RW 4096 VMFS \"base-flat.vmdk\"\n\nddb.adapterType = \"lsilogic\"\n"
	if err := os.WriteFile(filepath.Join(cache, "base.vmdk"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "base-flat.vmdk"), base, 0o644); err != nil {
		t.Fatal(err)
	}

	f.vm = createLinkedClone(t, f.c, "reloc", "ds-DC0_C0", "DC0_C0", "[ds-DC0_C0] cache/base.vmdk")

	// The child wrote its third grain.
	f.want = append([]byte(nil), base...)
	child := bytes.Repeat([]byte{0xcd}, grainBytes)
	copy(f.want[2*grainBytes:], child)
	flat, err := os.OpenFile(filepath.Join(root, "ds-DC0_C0", "reloc", "reloc-flat.vmdk"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flat.WriteAt(child, 2*grainBytes); err != nil {
		t.Fatal(err)
	}
	flat.Close()
	return f
}

// relocate moves the VM to DC0_C1's host and pool, with datastore ds.
func (f *storageVMotionFixture) relocate(t *testing.T, ds string) error {
	t.Helper()
	ctx := context.Background()
	finder, _ := dcFinder(t, f.c)
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C1/Resources")
	if err != nil {
		t.Fatal(err)
	}
	host, err := finder.HostSystem(ctx, "/DC0/host/DC0_C1/*")
	if err != nil {
		t.Fatal(err)
	}
	datastore, err := finder.Datastore(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	hostRef, poolRef, dsRef := host.Reference(), pool.Reference(), datastore.Reference()
	task, err := f.vm.Relocate(ctx, types.VirtualMachineRelocateSpec{Host: &hostRef, Pool: &poolRef, Datastore: &dsRef}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

func (f *storageVMotionFixture) reconfigure(memoryMB int64) error {
	ctx := context.Background()
	task, err := f.vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{MemoryMB: memoryMB})
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// exported reads the VM's disk through ExportVm's lease.
func (f *storageVMotionFixture) exported(t *testing.T) []byte {
	t.Helper()
	lease, err := f.vm.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	status, body := httpGet(t, diskURL(t, lease))
	if status != http.StatusOK {
		t.Fatalf("GET disk: %d %s", status, body)
	}
	if err := lease.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := readStreamOptimized(bytes.NewReader(body), out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRelocateMovesFilesToTheNewDatastore: a relocation to another
// cluster's host and datastore moves the VM's folder and its linked
// clone's chain there (the base copied, the cache's kept), the VM names
// the new files, and it can be reconfigured and exported afterwards.
func TestRelocateMovesFilesToTheNewDatastore(t *testing.T) {
	ctx := context.Background()
	f := newStorageVMotionFixture(t)
	if got := f.exported(t); !bytes.Equal(got, f.want) {
		t.Fatal("before relocation, the export is not the base under the child")
	}
	if err := f.relocate(t, "ds-DC0_C1"); err != nil {
		t.Fatal(err)
	}

	var props mo.VirtualMachine
	if err := f.vm.Properties(ctx, f.vm.Reference(), []string{"config", "summary.config", "datastore", "layoutEx", "runtime.host"}, &props); err != nil {
		t.Fatal(err)
	}
	if got := props.Config.Files.VmPathName; got != "[ds-DC0_C1] reloc/reloc.vmx" {
		t.Errorf("config.files.vmPathName is %q", got)
	}
	if got := props.Summary.Config.VmPathName; got != "[ds-DC0_C1] reloc/reloc.vmx" {
		t.Errorf("summary.config.vmPathName is %q", got)
	}
	for _, dir := range []string{props.Config.Files.LogDirectory, props.Config.Files.SnapshotDirectory, props.Config.Files.SuspendDirectory} {
		if dir != "" && !strings.HasPrefix(dir, "[ds-DC0_C1] reloc") {
			t.Errorf("config.files: %+v", props.Config.Files)
		}
	}
	disks := object.VirtualDeviceList(props.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	if len(disks) != 1 {
		t.Fatalf("disks: %v", disks)
	}
	backing := disks[0].(*types.VirtualDisk).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if backing.FileName != "[ds-DC0_C1] reloc/reloc.vmdk" || backing.Parent == nil ||
		backing.Parent.FileName != "[ds-DC0_C1] reloc/base.vmdk" || backing.Parent.Parent != nil {
		t.Errorf("disk chain: %s <- %+v", backing.FileName, backing.Parent)
	}
	if got := refNames(t, f.c, props.Datastore); !reflect.DeepEqual(got, []string{"ds-DC0_C1"}) {
		t.Errorf("datastore is %v", got)
	}
	for _, file := range props.LayoutEx.File {
		if !strings.HasPrefix(file.Name, "[ds-DC0_C1] reloc/") {
			t.Errorf("layoutEx names %s", file.Name)
		}
	}

	dest := filepath.Join(f.root, "ds-DC0_C1", "reloc")
	for _, name := range []string{"reloc.vmx", "reloc.vmdk", "reloc-flat.vmdk", "base.vmdk", "base-flat.vmdk"} {
		if _, err := os.Stat(filepath.Join(dest, name)); err != nil {
			t.Errorf("moved file: %v", err)
		}
	}
	if d, err := os.ReadFile(filepath.Join(dest, "base.vmdk")); err != nil || !strings.Contains(string(d), `"base-flat.vmdk"`) {
		t.Errorf("copied base descriptor: %s (%v)", d, err)
	}
	if p, err := descriptorParent(filepath.Join(dest, "reloc.vmdk")); err != nil || p != filepath.Join(dest, "base.vmdk") {
		t.Errorf("the moved delta names the parent %q (%v), not the moved base", p, err)
	}
	for _, name := range []string{"base.vmdk", "base-flat.vmdk"} {
		if _, err := os.Stat(filepath.Join(f.root, "ds-DC0_C0", "cache", name)); err != nil {
			t.Errorf("the shared base is gone: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.root, "ds-DC0_C0", "reloc")); !os.IsNotExist(err) {
		t.Errorf("the old folder is still there (%v)", err)
	}

	if err := f.reconfigure(256); err != nil {
		t.Fatalf("reconfigure after relocation: %v", err)
	}
	if got := f.exported(t); !bytes.Equal(got, f.want) {
		t.Fatal("after relocation, the export is not the base under the child")
	}
}

// TestReconfigureOfAVMOnAnUnmountedDatastoreIsRefused: a relocation that
// keeps the datastore leaves the files where they are (vcsim's own); a VM
// whose files are then on a datastore its host does not mount has its
// ReconfigVM_Task refused, not the simulator panicking.
func TestReconfigureOfAVMOnAnUnmountedDatastoreIsRefused(t *testing.T) {
	f := newStorageVMotionFixture(t)
	if err := f.relocate(t, "ds-DC0_C0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "ds-DC0_C0", "reloc", "reloc.vmx")); err != nil {
		t.Fatalf("a relocation that keeps the datastore moved the files: %v", err)
	}
	err := f.reconfigure(256)
	if err == nil || !strings.Contains(err.Error(), "InvalidDatastore") {
		t.Fatalf("reconfigure: %v", err)
	}
	if got := f.exported(t); !bytes.Equal(got, f.want) {
		t.Fatal("the disk changed")
	}
}
