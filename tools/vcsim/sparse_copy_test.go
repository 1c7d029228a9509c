package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
)

// TestCopyVirtualDiskConvertsASparseVMDK copies a monolithicSparse VMDK
// made by qemu-img, as the in-tree driver's sparse path does: the copy is
// a thin disk, its descriptor names its flat extent, and qemu-img finds it
// equal to the raw disk; the source is untouched.
func TestCopyVirtualDiskConvertsASparseVMDK(t *testing.T) {
	v := newTestVCenter(t)
	ctx := context.Background()
	dir := v.inst.info.Datastores["nfs0"]
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	const capacity = 40*grainBytes + 4608 // not a whole number of grains
	raw := rawDisk(capacity, 11)
	src := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(src, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "tmp", "sparse.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", src, sparse)

	dc, err := find.NewFinder(v.c.Client).DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vdm := object.NewVirtualDiskManager(v.c.Client)
	task, err := vdm.CopyVirtualDisk(ctx, "[nfs0] tmp/sparse.vmdk", dc, "[nfs0] copy.vmdk", dc, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "copy.vmdk")
	extents, size, err := flatExtents(copied)
	if err != nil || len(extents) != 1 || size != capacity || filepath.Base(extents[0].file) != "copy-flat.vmdk" {
		t.Fatalf("copy.vmdk says %+v, %d bytes (%v)", extents, size, err)
	}
	checkThin(t, extents[0].file, raw, capacity)
	qemuImg(t, "compare", "-f", "raw", "-F", "vmdk", src, copied)
	qemuImg(t, "compare", "-f", "raw", "-F", "vmdk", src, sparse)

	// Again onto it: refused without force, as vCenter does.
	task, err = vdm.CopyVirtualDisk(ctx, "[nfs0] tmp/sparse.vmdk", dc, "[nfs0] copy.vmdk", dc, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err == nil || !strings.Contains(err.Error(), "FileAlreadyExists") {
		t.Fatalf("a copy onto an existing disk: %v", err)
	}
}

func TestReadMonolithicSparseRefusesWhatItCannotRead(t *testing.T) {
	raw := rawDisk(8*grainBytes, 12)
	src := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(src, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := src + ".vmdk"
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", src, sparse)
	whole, err := os.ReadFile(sparse)
	if err != nil {
		t.Fatal(err)
	}
	stream := qemuStreamOptimized(t, raw)
	compressed, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"cut in the last grain": whole[:len(whole)-grainBytes/2],
		"not a VMDK":            raw,
		"streamOptimized":       compressed,
	} {
		out, err := os.CreateTemp(t.TempDir(), "flat")
		if err != nil {
			t.Fatal(err)
		}
		_, err = readMonolithicSparse(bytes.NewReader(data), int64(len(data)), out)
		_ = out.Close()
		if err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}
