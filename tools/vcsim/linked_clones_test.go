package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// createLinkedClone creates a powered-off VM name on cluster's host whose
// one disk, "[ds] name/name.vmdk", is a delta of chain[0] (its parents
// after it, as vCenter reports a backing), the way the driver makes a
// linked clone (vm_spec.disk): a FlatVer2 backing with a parent, added
// with fileOperation create; vcsim sizes it as its parent.
func createLinkedClone(t *testing.T, c *govmomi.Client, name, ds, cluster string, chain ...string) *object.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	finder, _ := dcFinder(t, c)
	folder, err := finder.Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := finder.ResourcePool(ctx, "/DC0/host/"+cluster+"/Resources")
	if err != nil {
		t.Fatal(err)
	}
	host, err := finder.HostSystem(ctx, "/DC0/host/"+cluster+"/*")
	if err != nil {
		t.Fatal(err)
	}
	var parent *types.VirtualDiskFlatVer2BackingInfo
	for i := len(chain) - 1; i >= 0; i-- {
		parent = &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: chain[i]},
			DiskMode:                     string(types.VirtualDiskModePersistent),
			Parent:                       parent,
		}
	}
	controller := &types.VirtualLsiLogicController{VirtualSCSIController: types.VirtualSCSIController{
		SharedBus:         types.VirtualSCSISharingNoSharing,
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 1000}},
	}}
	unit := int32(0)
	disk := &types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{Key: 2000, ControllerKey: 1000, UnitNumber: &unit,
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: dsPath(ds, name+"/"+name+".vmdk")},
				DiskMode:                     string(types.VirtualDiskModePersistent),
				ThinProvisioned:              types.NewBool(true),
				Parent:                       parent,
			}},
		CapacityInKB: 1024,
	}
	spec := types.VirtualMachineConfigSpec{
		Name: name, GuestId: "otherGuest64", MemoryMB: 128, NumCPUs: 1,
		Files: &types.VirtualMachineFileInfo{VmPathName: "[" + ds + "]"},
		DeviceChange: []types.BaseVirtualDeviceConfigSpec{
			&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: controller},
			&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd,
				FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate, Device: disk},
		},
	}
	task, err := folder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return object.NewVirtualMachine(c.Client, info.Result.(types.ManagedObjectReference))
}

// writeGrains writes data into the disk file at local at grain g (the
// guest writing into its disk).
func writeGrains(t *testing.T, local string, g int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(local, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, g*grainBytes); err != nil {
		t.Fatal(err)
	}
}

// fileBytes reads the files at paths (nil for a missing one).
func fileBytes(t *testing.T, paths ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

// qemuBacking is the backing file qemu-img finds for a disk ("" if none).
func qemuBacking(t *testing.T, disk string) string {
	t.Helper()
	var info struct {
		Backing string `json:"full-backing-filename"`
	}
	if err := json.Unmarshal(qemuImg(t, "info", "--output=json", disk), &info); err != nil {
		t.Fatal(err)
	}
	return info.Backing
}

// copyDisk runs CopyVirtualDisk_Task.
func copyDisk(t *testing.T, c *govmomi.Client, src, dst string, force bool) error {
	t.Helper()
	ctx := context.Background()
	dc, err := find.NewFinder(c.Client).DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := object.NewVirtualDiskManager(c.Client).CopyVirtualDisk(ctx, src, dc, dst, dc, nil, force)
	if err != nil {
		t.Fatal(err)
	}
	return task.Wait(ctx)
}

// checkStandalone checks that the disk at local is one thin flat extent
// <name>-flat.vmdk of want's size, naming no parent, that qemu-img reads
// as want (raw, a file).
func checkStandalone(t *testing.T, local string, want []byte, raw string) {
	t.Helper()
	extents, size, err := flatExtents(local)
	flat := strings.TrimSuffix(local, ".vmdk") + "-flat.vmdk"
	if err != nil || len(extents) != 1 || size != int64(len(want)) || extents[0].file != flat {
		t.Fatalf("%s says %+v, %d bytes (%v)", local, extents, size, err)
	}
	descriptor, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(descriptor), "parentFileNameHint") || !strings.Contains(string(descriptor), "parentCID=ffffffff") {
		t.Fatalf("%s is not standalone:\n%s", local, descriptor)
	}
	checkThin(t, flat, want, int64(len(want)))
	qemuImg(t, "compare", "-f", "raw", "-F", "vmdk", raw, local)
	if b := qemuBacking(t, local); b != "" {
		t.Fatalf("qemu-img finds the backing file %s for %s", b, local)
	}
}

// TestCopyVirtualDiskConsolidatesALinkedClone makes linked clones as the
// driver does (a base disk made by vcsim holding data, a VM whose disk is
// a delta of it, a second VM whose disk is a delta of the first's: a
// chain of two deltas), the guests writing into their deltas, and copies
// them with CopyVirtualDisk_Task: each copy is one standalone thin disk
// of the child's capacity holding what the chain reads; the sources keep
// their files and parents. The first clone goes the driver's
// copy-on-resize way (detached, moved aside, copied back).
func TestCopyVirtualDiskConsolidatesALinkedClone(t *testing.T) {
	v := newTestVCenter(t)
	ctx := context.Background()
	root := v.inst.info.Datastores["nfs0"]
	_, dc := dcFinder(t, v.c)

	// The base: a thin disk vcsim makes, its flat extent then filled.
	const capacity = 24*grainBytes + 3072 // not a whole number of grains
	if err := object.NewFileManager(v.c.Client).MakeDirectory(ctx, "[nfs0] cache", dc, false); err != nil {
		t.Fatal(err)
	}
	vdm := object.NewVirtualDiskManager(v.c.Client)
	task, err := vdm.CreateVirtualDisk(ctx, "[nfs0] cache/base.vmdk", dc, &types.FileBackedVirtualDiskSpec{
		VirtualDiskSpec: types.VirtualDiskSpec{DiskType: string(types.VirtualDiskTypeThin), AdapterType: string(types.VirtualDiskAdapterTypeLsiLogic)},
		CapacityKb:      capacity / 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	base := rawDisk(capacity, 21) // data, text and holes by turns
	baseFlat := filepath.Join(root, "cache", "base-flat.vmdk")
	writeGrains(t, baseFlat, 0, base)

	// Two clones deep; what each disk reads.
	clone1 := createLinkedClone(t, v.c, "clone1", "nfs0", "DC0_C0", "[nfs0] cache/base.vmdk")
	createLinkedClone(t, v.c, "clone2", "nfs0", "DC0_C0", "[nfs0] clone1/clone1.vmdk", "[nfs0] cache/base.vmdk")
	grain := func(b byte) []byte { return bytes.Repeat([]byte{b}, grainBytes) }
	want1 := append([]byte(nil), base...)
	write1 := map[int64][]byte{
		1: grain(0xc1), // over the base's text
		2: append(make([]byte, 100), []byte("clone1 wrote into a hole")...),
	}
	for g, data := range write1 {
		writeGrains(t, filepath.Join(root, "clone1", "clone1-flat.vmdk"), g, data)
		copy(want1[g*grainBytes:], append(data, make([]byte, grainBytes-len(data))...))
	}
	want2 := append([]byte(nil), want1...)
	last := grain(0xc2)[:capacity%grainBytes] // the last, partial grain
	write2 := map[int64][]byte{1: grain(0xc2), 5: grain(0xc3), capacity / grainBytes: last}
	for g, data := range write2 {
		writeGrains(t, filepath.Join(root, "clone2", "clone2-flat.vmdk"), g, data)
		copy(want2[g*grainBytes:], data)
	}
	raw := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The deltas name their parents on the datastore.
	d1, d2 := filepath.Join(root, "clone1", "clone1.vmdk"), filepath.Join(root, "clone2", "clone2.vmdk")
	baseDesc := filepath.Join(root, "cache", "base.vmdk")
	for child, parent := range map[string]string{d1: baseDesc, d2: d1} {
		if got, err := descriptorParent(child); err != nil || got != parent {
			t.Fatalf("%s names the parent %q (%v), want %s", child, got, err, parent)
		}
		if got := qemuBacking(t, child); got != parent {
			t.Fatalf("qemu-img finds the backing file %q for %s, want %s", got, child, parent)
		}
	}

	// Two deltas deep, copied elsewhere.
	sources := []string{d1, d2, baseDesc, baseFlat, filepath.Join(root, "clone1", "clone1-flat.vmdk"), filepath.Join(root, "clone2", "clone2-flat.vmdk")}
	before := fileBytes(t, sources...)
	if err := copyDisk(t, v.c, "[nfs0] clone2/clone2.vmdk", "[nfs0] clone2/copy.vmdk", false); err != nil {
		t.Fatal(err)
	}
	checkStandalone(t, filepath.Join(root, "clone2", "copy.vmdk"), want2, raw("want2.raw", want2))
	after := fileBytes(t, sources...)
	for _, p := range sources {
		if !bytes.Equal(before[p], after[p]) {
			t.Errorf("the copy changed its source %s", p)
		}
	}

	// The driver's copy-on-resize of clone1's root disk: detached, moved
	// aside, copied back.
	var props mo.VirtualMachine
	if err := clone1.Properties(ctx, clone1.Reference(), []string{"config.hardware.device"}, &props); err != nil {
		t.Fatal(err)
	}
	disks := object.VirtualDeviceList(props.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	if err := clone1.RemoveDevice(ctx, true, disks...); err != nil {
		t.Fatal(err)
	}
	task, err = vdm.MoveVirtualDisk(ctx, "[nfs0] clone1/clone1.vmdk", dc, "[nfs0] clone1/clone1.orig.vmdk", dc, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	orig := filepath.Join(root, "clone1", "clone1.orig.vmdk")
	sources = []string{orig, filepath.Join(root, "clone1", "clone1.orig-flat.vmdk"), baseDesc, baseFlat}
	before = fileBytes(t, sources...)
	if err := copyDisk(t, v.c, "[nfs0] clone1/clone1.orig.vmdk", "[nfs0] clone1/clone1.vmdk", false); err != nil {
		t.Fatal(err)
	}
	checkStandalone(t, d1, want1, raw("want1.raw", want1))
	after = fileBytes(t, sources...)
	for _, p := range sources {
		if !bytes.Equal(before[p], after[p]) {
			t.Errorf("the copy changed its source %s", p)
		}
	}
	if got := qemuBacking(t, orig); got != baseDesc {
		t.Fatalf("the source lost its parent: qemu-img finds %q", got)
	}

	// Onto an existing disk: refused without force, as vCenter does; with
	// force, written again.
	if err := copyDisk(t, v.c, "[nfs0] clone1/clone1.orig.vmdk", "[nfs0] clone1/clone1.vmdk", false); err == nil || !strings.Contains(err.Error(), "FileAlreadyExists") {
		t.Fatalf("a copy onto an existing disk: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "clone1", "clone1-flat.vmdk"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyDisk(t, v.c, "[nfs0] clone1/clone1.orig.vmdk", "[nfs0] clone1/clone1.vmdk", true); err != nil {
		t.Fatal(err)
	}
	checkStandalone(t, d1, want1, raw("want1.raw", want1))
}

// TestCopyVirtualDiskOfAFlatDiskIsVcsims: a disk naming no parent is
// still copied by vcsim, its two files byte for byte.
func TestCopyVirtualDiskOfAFlatDiskIsVcsims(t *testing.T) {
	v := newTestVCenter(t)
	dir := filepath.Join(v.inst.info.Datastores["nfs0"], "flat")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	descriptor := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n" +
		"RW 256 VMFS \"disk-flat.vmdk\"\n\nddb.adapterType = \"lsilogic\"\n"
	data := rawDisk(128<<10, 5)
	if err := os.WriteFile(filepath.Join(dir, "disk.vmdk"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk-flat.vmdk"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyDisk(t, v.c, "[nfs0] flat/disk.vmdk", "[nfs0] flat/copy.vmdk", false); err != nil {
		t.Fatal(err)
	}
	got := fileBytes(t, filepath.Join(dir, "copy.vmdk"), filepath.Join(dir, "copy-flat.vmdk"))
	if string(got[filepath.Join(dir, "copy.vmdk")]) != descriptor || !bytes.Equal(got[filepath.Join(dir, "copy-flat.vmdk")], data) {
		t.Fatal("a flat disk was not copied byte for byte")
	}
}

// TestCopyVirtualDiskOfABrokenChainFails: a delta whose parent is gone,
// or whose parents loop, cannot be read: the copy fails and leaves no
// destination.
func TestCopyVirtualDiskOfABrokenChainFails(t *testing.T) {
	v := newTestVCenter(t)
	dir := filepath.Join(v.inst.info.Datastores["nfs0"], "broken")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	delta := func(name, parent string) {
		d := "# Disk DescriptorFile\nversion=1\nCID=00000000\nparentCID=00000000\ncreateType=\"vmfs\"\nparentFileNameHint=\"" + parent + "\"\n\n" +
			"RW 256 VMFS \"" + name + "-flat.vmdk\"\n"
		if err := os.WriteFile(filepath.Join(dir, name+".vmdk"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	delta("orphan", filepath.Join(dir, "gone.vmdk"))
	delta("a", "b.vmdk")
	delta("b", "a.vmdk")
	for name, fault := range map[string]string{"orphan": "FileNotFound", "a": "FileFault"} {
		err := copyDisk(t, v.c, "[nfs0] broken/"+name+".vmdk", "[nfs0] broken/"+name+"-copy.vmdk", false)
		if err == nil || !strings.Contains(err.Error(), fault) {
			t.Errorf("copy of %s: %v, want a %s", name, err, fault)
		}
		for _, f := range []string{name + "-copy.vmdk", name + "-copy-flat.vmdk"} {
			if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
				t.Errorf("a failed copy left %s (%v)", f, err)
			}
		}
	}
}

func TestAddParentHintKeepsTheDescriptor(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "child.vmdk")
	text := "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=00000000\nparentCID=00000000\ncreateType=\"vmfs\"\n\n" +
		"# Extent description (1MB capacity)\nRW 2048 VMFS \"child-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = \"lsilogic\"\n"
	if err := os.WriteFile(d, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second time changes nothing
		if err := addParentHint(d, "parent.vmdk"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(d)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(text, "createType=\"vmfs\"\n", "createType=\"vmfs\"\nparentFileNameHint=\"parent.vmdk\"\n", 1)
	if string(got) != want {
		t.Fatalf("descriptor with a hint:\n%s\nwant:\n%s", got, want)
	}
	if p, err := descriptorParent(d); err != nil || p != filepath.Join(dir, "parent.vmdk") {
		t.Fatalf("parent %q (%v)", p, err)
	}
}
