package main

// Linked clones on the datastore: a delta disk names its parent, a disk is
// read through its chain, and CopyVirtualDisk_Task of a delta consolidates
// the chain.
//
// On ESX a linked clone's child disk is a delta whose descriptor names its
// parent (parentFileNameHint, the parent's name when they share a folder,
// else its absolute path); the parent may itself be a delta, a chain of
// several. vcsim makes the child of a disk added with fileOperation create
// and a backing parent as an empty flat disk of the parent's capacity (a
// descriptor naming <name>-flat.vmdk, and that file, sparse: the guest's
// writes would go there) and keeps the parent only in the VM's device
// backing: the descriptor names none, so a disk taken off its VM (the
// driver's copy-on-resize detaches the root, moves it aside and copies it
// back) forgets its parent. So here:
//   - parentHints: whenever a VM's device list changes, each disk of a
//     backing chain whose descriptor names no parent gets a
//     parentFileNameHint naming the next one (parentHint: a base name in
//     the same folder, else the file's absolute path here; relocate.go
//     writes them the same way when it moves a chain). A hint already
//     there is left as it is.
//   - openChain reads a disk through its chain (export leases,
//     nfc_export.go, and the copy below): a grain of a delta that is all
//     zeros counts as unwritten and shows its parent's (overlay).
//   - consolidateChain is CopyVirtualDisk_Task from a disk that names a
//     parent (sparse_copy.go's hook sends it here), as ESX does it: the
//     destination is one standalone thin disk, a descriptor naming its own
//     flat extent (zero blocks left holes), of the child's capacity,
//     holding what a guest reads through the whole chain, with no parent;
//     the source chain is left as it was.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

// maxChain bounds a chain read from hints (vSphere allows 32 snapshot
// levels; a loop of hints must not read forever).
const maxChain = 64

// parentHints is a Registry handler; its reference only keys it in the
// Registry's handler table.
type parentHints struct{}

func installParentHints(m *simulator.Model) {
	m.Map().AddHandler(parentHints{})
}

func (parentHints) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "vcdriver", Value: "parent-hints"}
}

func (parentHints) PutObject(*simulator.Context, mo.Reference) {}

func (parentHints) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

// UpdateObject runs in the call that changed the VM, which holds its lock
// (a VM being created is not registered yet: its devices are read from o).
func (parentHints) UpdateObject(ctx *simulator.Context, o mo.Reference, changes []types.PropertyChange) {
	vm, ok := o.(*mo.VirtualMachine)
	if !ok || vm.Config == nil {
		return
	}
	for _, c := range changes {
		if c.Name == "config.hardware.device" {
			recordParents(ctx, vm.Config.Hardware.Device)
			return
		}
	}
}

// recordParents gives each delta of the disks' backing chains that names
// no parent in its descriptor a parentFileNameHint.
func recordParents(ctx *simulator.Context, devices []types.BaseVirtualDevice) {
	for _, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		chain := diskChain(disk.Backing)
		for i := 0; i+1 < len(chain); i++ {
			var child, parent object.DatastorePath
			if !child.FromString(chain[i].FileName) || !parent.FromString(chain[i+1].FileName) {
				break
			}
			local, parentLocal := datastoreFile(ctx, child), datastoreFile(ctx, parent)
			if local == "" || parentLocal == "" {
				break
			}
			if err := addParentHint(local, parentHint(local, parentLocal)); err != nil {
				log.Printf("linked clone %s: recording its parent %s: %v", child, parent, err)
			}
		}
	}
}

// parentHint is what a delta's descriptor at child says of its parent's
// descriptor at parent (both local paths): the parent's name when they
// share a folder, else its absolute path.
func parentHint(child, parent string) string {
	if filepath.Dir(child) == filepath.Dir(parent) {
		return filepath.Base(parent)
	}
	return parent
}

var parentHintValueRE = regexp.MustCompile(`(?m)^\s*parentFileNameHint\s*=\s*"([^"]*)"`)

// descriptorParent is the local path of the parent a text descriptor
// names ("" if it names none, or is a binary disk).
func descriptorParent(descriptor string) (string, error) {
	data, err := readDescriptor(descriptor)
	if err != nil || data == nil {
		return "", err
	}
	m := parentHintValueRE.FindSubmatch(data)
	if m == nil || len(m[1]) == 0 {
		return "", nil
	}
	hint := filepath.FromSlash(string(m[1]))
	if !filepath.IsAbs(hint) {
		hint = filepath.Join(filepath.Dir(descriptor), hint)
	}
	return filepath.Clean(hint), nil
}

// addParentHint writes parentFileNameHint="hint" into the text descriptor
// at local, after its header, unless it names a parent already.
func addParentHint(local, hint string) error {
	data, err := readDescriptor(local)
	if err != nil || data == nil || parentHintValueRE.Match(data) {
		return err
	}
	lines := strings.Split(string(data), "\n")
	at := 0 // after "# Disk DescriptorFile", if nothing better
	for i, l := range lines {
		if descriptorExtentRE.MatchString(l) {
			break
		}
		if key, _, ok := strings.Cut(l, "="); ok {
			switch strings.ToLower(strings.TrimSpace(key)) {
			case "createtype", "parentcid", "cid", "version", "encoding":
				at = i
			}
		}
	}
	line := `parentFileNameHint="` + hint + `"`
	lines = append(lines[:at+1], append([]string{line}, lines[at+1:]...)...)
	tmp := local + ".vcsim-hint"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, local); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// descriptorChain is a disk's descriptor and its parents', the child
// first, followed through their parentFileNameHints.
func descriptorChain(descriptor string) ([]string, error) {
	chain := []string{filepath.Clean(descriptor)}
	seen := map[string]bool{chain[0]: true}
	for {
		parent, err := descriptorParent(chain[len(chain)-1])
		if err != nil {
			return nil, err
		}
		if parent == "" {
			return chain, nil
		}
		if seen[parent] || len(chain) >= maxChain {
			return nil, fmt.Errorf("%s: its chain of parents loops or is longer than %d disks", descriptor, maxChain)
		}
		if _, err := os.Stat(parent); err != nil {
			return nil, fmt.Errorf("%s names the parent %s: %w", chain[len(chain)-1], parent, err)
		}
		seen[parent] = true
		chain = append(chain, parent)
	}
}

// hasParent says whether the file at local is a text descriptor naming a
// parent disk.
func hasParent(local string) bool {
	parent, err := descriptorParent(local)
	return err == nil && parent != ""
}

// openChain reads a disk through its chain of descriptors (the child
// first): each one's flat extents in order (a missing or short extent
// reads as zeros), a delta's grains over its parents' (overlay). The
// reader reads zeros past the extents, endlessly; size is capacity, or
// the child descriptor's if capacity <= 0. done closes the files.
func openChain(descriptors []string, capacity int64) (r io.Reader, size int64, done func(), err error) {
	var closers []io.Closer
	done = func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	var layers []io.Reader
	for i, descriptor := range descriptors {
		extents, size, err := flatExtents(descriptor)
		if err != nil {
			done()
			return nil, 0, nil, err
		}
		if i == 0 && capacity <= 0 {
			capacity = size
		}
		var readers []io.Reader
		for _, e := range extents {
			var r io.Reader = zeros{}
			if f, err := os.Open(e.file); err == nil {
				closers = append(closers, f)
				r = io.MultiReader(bufio.NewReaderSize(f, 1<<20), zeros{})
			} else if !os.IsNotExist(err) {
				done()
				return nil, 0, nil, err
			}
			readers = append(readers, io.LimitReader(r, e.size))
		}
		layers = append(layers, io.MultiReader(append(readers, zeros{})...))
	}
	if len(layers) == 0 {
		return nil, 0, done, errors.New("no disk to read")
	}
	r = layers[0]
	if len(layers) > 1 {
		r = &overlay{layers: layers}
	}
	return r, capacity, done, nil
}

// overlay reads a delta disk over its parents (a linked clone), grain by
// grain: a grain of the child that is all zeros counts as unwritten and
// shows its parent's. vcsim keeps no allocation map for delta disks, and
// nothing but a test writes into one, so zeros are the best guess there
// is. Every layer reads endlessly (zeros past its extents).
var zeroGrain [grainBytes]byte

type overlay struct {
	layers       []io.Reader
	grain, layer []byte
	pending      []byte
}

func (o *overlay) Read(b []byte) (int, error) {
	if len(o.pending) == 0 {
		if o.grain == nil {
			o.grain, o.layer = make([]byte, grainBytes), make([]byte, grainBytes)
		}
		clear(o.grain)
		chosen := false
		for _, layer := range o.layers {
			if _, err := io.ReadFull(layer, o.layer); err != nil {
				return 0, err
			}
			if !chosen && !bytes.Equal(o.layer, zeroGrain[:]) {
				copy(o.grain, o.layer)
				chosen = true
			}
		}
		o.pending = o.grain
	}
	n := copy(b, o.pending)
	o.pending = o.pending[n:]
	return n, nil
}

// consolidateChain writes the disk at src, read through its chain, as the
// standalone thin disk dst: its flat extent, then its descriptor.
func consolidateChain(src, dst string) error {
	chain, err := descriptorChain(src)
	if err != nil {
		return err
	}
	flat := simulator.VirtualDiskBackingFileName(filepath.Base(dst))
	flatPath := filepath.Join(filepath.Dir(dst), flat)
	adapter := ""
	for _, d := range chain {
		if d == filepath.Clean(dst) {
			return fmt.Errorf("the destination %s is a disk of the source's chain", dst)
		}
		extents, _, err := flatExtents(d)
		if err != nil {
			return err
		}
		for _, e := range extents {
			if e.file == flatPath {
				return fmt.Errorf("the destination's extent %s is read by the source's chain", flatPath)
			}
		}
		if adapter == "" {
			if f, err := os.Open(d); err == nil {
				if desc, err := vmdk.ParseDescriptor(io.LimitReader(f, 1<<20)); err == nil {
					adapter = desc.DDB["adapterType"]
				}
				_ = f.Close()
			}
		}
	}
	if adapter == "" {
		adapter = "lsiLogic"
	}
	text, err := readDescriptor(src)
	if err != nil {
		return err
	}
	r, capacity, done, err := openChain(chain, 0)
	if err != nil {
		return err
	}
	defer done()

	out, err := os.OpenFile(flatPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	d := &streamDecoder{dst: out}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < capacity && err == nil; {
		n := min(int64(len(buf)), capacity-off)
		if _, err = io.ReadFull(r, buf[:n]); err == nil {
			err = d.write(off, buf[:n])
		}
		off += n
	}
	if err == nil {
		err = out.Truncate(capacity)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// The new descriptor takes the child's ddb entries, not its parent.
		err = writeThinDescriptor(dst, vmdk.NewDescriptor(), flat, adapter,
			streamReadStats{Capacity: capacity, Descriptor: string(text)})
	}
	if err != nil {
		_ = os.Remove(flatPath)
		return err
	}
	return nil
}
