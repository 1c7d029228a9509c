package main

// CopyVirtualDisk_Task from a source vcsim would copy wrongly, answered as
// ESX does it; vcsim copies a disk's two files, the descriptor and its
// -flat.vmdk, byte for byte, which suits a flat disk (left to vcsim) but
// not:
//   - a monolithicSparse VMDK: the in-tree Nova driver's path for sparse
//     images PUTs the sparse file to a datastore and has ESX convert it
//     with that copy, and a sparse file has no -flat.vmdk. The destination
//     is a thin disk (descriptor and flat extent) holding the source's
//     data (expandSparse);
//   - a delta disk naming a parent (a linked clone's child): the
//     destination is one standalone thin disk holding what the chain reads
//     (consolidateChain, linked_clones.go); vcsim would copy the child
//     alone, with its parent link.
// Either way the source is left as it was, and an existing destination is
// refused without force (FileAlreadyExists), as vCenter does.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

const (
	grainZeroed = 1       // a grain table entry for a grain that reads as zeros
	maxGTEs     = 1 << 16 // grain table entries; VMware and qemu-img write 512
)

// diskCopier answers CopyVirtualDisk_Task for sparse and delta sources;
// see exportService for why calls are pointed at an object of ours.
type diskCopier struct {
	mo.ExtensibleManagedObject
}

var diskCopierRef = types.ManagedObjectReference{Type: "VcdriverDiskCopier", Value: "vcdriver-disk-copier"}

func installDiskCopy(m *simulator.Model) {
	c := &diskCopier{}
	c.Self = diskCopierRef
	m.Map().Put(c)
	routeMethods(m, func(ctx *simulator.Context, method *simulator.Method) {
		if method.Name != "CopyVirtualDisk_Task" {
			return
		}
		if req, ok := method.Body.(*types.CopyVirtualDisk_Task); ok {
			if src := localFile(ctx, req.SourceName); isMonolithicSparse(src) || hasParent(src) {
				method.This = diskCopierRef
			}
		}
	})
}

// localFile is a datastore path's file here ("" if it names none).
func localFile(ctx *simulator.Context, name string) string {
	var p object.DatastorePath
	if !p.FromString(name) {
		return ""
	}
	return datastoreFile(ctx, p)
}

func (c *diskCopier) CopyVirtualDiskTask(ctx *simulator.Context, req *types.CopyVirtualDisk_Task) soap.HasFault {
	task := simulator.CreateTask(c, "copyVirtualDisk", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		src, dst := localFile(ctx, req.SourceName), localFile(ctx, req.DestName)
		if dst == "" {
			return nil, &types.InvalidDatastorePath{DatastorePath: req.DestName}
		}
		if _, err := os.Stat(dst); err == nil && (req.Force == nil || !*req.Force) {
			return nil, &types.FileAlreadyExists{FileFault: types.FileFault{File: req.DestName}}
		}
		convert, key := consolidateChain, "vcdriver.vcsim.chain"
		if isMonolithicSparse(src) {
			convert, key = expandSparse, "vcdriver.vcsim.sparse"
		}
		if err := convert(src, dst); err != nil {
			fault := types.FileFault{File: req.SourceName, VimFault: types.VimFault{MethodFault: types.MethodFault{
				FaultMessage: []types.LocalizableMessage{{Key: key, Message: err.Error()}}}}}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &types.FileNotFound{FileFault: fault} // a parent gone
			}
			return nil, &fault
		}
		return nil, nil
	})
	return &methods.CopyVirtualDisk_TaskBody{Res: &types.CopyVirtualDisk_TaskResponse{Returnval: task.Run(ctx)}}
}

// isMonolithicSparse says whether the file at local starts with a hosted
// sparse VMDK header without compressed grains.
func isMonolithicSparse(local string) bool {
	f, err := os.Open(local)
	if err != nil {
		return false
	}
	defer f.Close()
	var h sparseHeader
	if binary.Read(f, binary.LittleEndian, &h) != nil {
		return false
	}
	return h.MagicNumber == sparseMagic && h.Flags&flagCompressed == 0
}

// expandSparse writes the sparse VMDK at local as the thin disk dst: its
// flat extent, then its descriptor.
func expandSparse(local, dst string) error {
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	flat := simulator.VirtualDiskBackingFileName(filepath.Base(dst))
	out, err := os.OpenFile(filepath.Join(filepath.Dir(dst), flat), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var written atomic.Int64
	stats, err := readMonolithicSparse(src, info.Size(), thinExtent{File: out, written: &written})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(filepath.Join(filepath.Dir(dst), flat))
		return err
	}
	adapter := "lsiLogic"
	if d, err := vmdk.ParseDescriptor(strings.NewReader(stats.Descriptor)); err == nil && d.DDB["adapterType"] != "" {
		adapter = d.DDB["adapterType"]
	}
	return writeThinDescriptor(dst, vmdk.NewDescriptor(), flat, adapter, stats)
}

// readMonolithicSparse decodes a monolithicSparse VMDK (hosted sparse, as
// qemu-img and VMware Workstation write it: uncompressed grains found
// through the grain directory and its tables) of size bytes into dst, its
// all-zero blocks left as holes.
func readMonolithicSparse(src io.ReaderAt, size int64, dst streamTarget) (streamReadStats, error) {
	d := &streamDecoder{dst: dst}
	var raw [sectorSize]byte
	if _, err := src.ReadAt(raw[:], 0); err != nil {
		return d.stats, errors.New("truncated: no header")
	}
	h := &d.header
	_ = binary.Read(bytes.NewReader(raw[:]), binary.LittleEndian, h)
	switch {
	case h.MagicNumber != sparseMagic:
		return d.stats, fmt.Errorf("not a sparse VMDK: bad magic %#08x", h.MagicNumber)
	case h.Flags&flagCompressed != 0:
		return d.stats, errors.New("not a monolithicSparse VMDK: its grains are compressed")
	case sizesError(h) != nil:
		return d.stats, sizesError(h)
	case h.Capacity == 0:
		return d.stats, errors.New("no capacity: the header says 0")
	case h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > maxGTEs:
		return d.stats, fmt.Errorf("bad grain table size of %d entries", h.NumGTEsPerGT)
	}
	read := func(sector uint64, n int64, what string) ([]byte, error) {
		at := int64(sector) * sectorSize
		if at < 0 || at > size || n > size-at {
			return nil, fmt.Errorf("truncated: %s at byte %d ends past the file's %d bytes", what, at, size)
		}
		b := make([]byte, n)
		_, err := src.ReadAt(b, at)
		return b, err
	}
	if text, err := read(h.DescriptorOffset, int64(h.DescriptorSize)*sectorSize, "the descriptor"); err == nil && h.DescriptorOffset > 0 {
		d.stats.Descriptor = string(bytes.TrimRight(text, "\x00"))
	}
	grainBytes := int64(h.GrainSize) * sectorSize
	capacity := int64(h.Capacity) * sectorSize
	gtes := uint64(h.NumGTEsPerGT)
	grains := (h.Capacity + h.GrainSize - 1) / h.GrainSize
	tables := (grains + gtes - 1) / gtes
	gd, err := read(h.GDOffset, int64(4*tables), "the grain directory")
	if err != nil {
		return d.stats, err
	}
	for t := uint64(0); t < tables; t++ {
		gtSector := uint64(binary.LittleEndian.Uint32(gd[4*t:]))
		if gtSector == 0 {
			continue
		}
		gt, err := read(gtSector, int64(4*gtes), fmt.Sprintf("grain table %d", t))
		if err != nil {
			return d.stats, err
		}
		for i := uint64(0); i < gtes && t*gtes+i < grains; i++ {
			sector := uint64(binary.LittleEndian.Uint32(gt[4*i:]))
			if sector <= grainZeroed {
				continue
			}
			off := int64(t*gtes+i) * grainBytes
			data, err := read(sector, min(grainBytes, capacity-off), fmt.Sprintf("the grain at lba %d", off/sectorSize))
			if err != nil {
				return d.stats, err
			}
			d.stats.Grains++
			if err := d.write(off, data); err != nil {
				return d.stats, err
			}
		}
	}
	d.stats.Capacity = capacity
	if err := dst.Truncate(capacity); err != nil {
		return d.stats, &targetError{err}
	}
	return d.stats, nil
}
