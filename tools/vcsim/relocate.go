package main

// RelocateVM_Task: the VM listed under its new host, and its files moved
// when its datastore changes.
//
// vcsim's RelocateVM_Task changes the VM's host, pool and datastore
// properties (no file moves) but leaves the VM in its old host's and
// pool's "vm" lists, where a client reading VMs by traversal from hosts
// still finds it: the VM is moved to the new host's and pool's lists as
// the call is made.
//
// A relocation whose spec.datastore is not the datastore of the VM's home
// (config.files.vmPathName) is a storage vMotion, and vcsim moves no file:
// its disks would still name the old datastore, which the new host may not
// mount (a cluster's own datastore, cluster_datastores.go), and the next
// ReconfigVM_Task would panic the simulator in findDatastore. Such a call
// is answered here (relocateService) with a task that does what vCenter
// does, then runs vcsim's own relocation for the rest:
//   - the VM's home folder is copied to "[dest] <same folder>/";
//   - with the default diskMoveType (moveAllDiskBackingsAndDisallowSharing,
//     and any type but moveChildMostDiskBacking) every disk moves with its
//     whole backing chain: a parent outside the VM's folder (the image
//     cache's "[ds] vcdriver_image_cache/<id>/<id>.vmdk") is copied into
//     the new folder under its base name (made unique if taken) and stays
//     where it was, for the other VMs sharing it; files of the VM's folder
//     keep their names. With moveChildMostDiskBacking only the child moves.
//     A spec.disk locator with a datastore sends its disk (and chain) to
//     "[its datastore] <folder>/" instead; a chain element already on its
//     target datastore stays where it is;
//   - a disk's descriptor is copied with its extent lines naming the new
//     flat files (<name>-flat.vmdk) and its parentFileNameHint, if any
//     (linked_clones.go writes one into every delta), the new parent;
//     flat files are copied sparsely (zero blocks left holes);
//   - the VM's disk backings (and their parents), other file backings in
//     its folder, config.files, summary.config.vmPathName, layout,
//     layoutEx, storage and the datastore property (and the datastores'
//     "vm" lists) then name the new places;
//   - the old copies of what moved are removed, and the old folder if that
//     leaves it empty; copied shared parents stay.
//   - the storage policies of the VM home and disks (storage_policies.go)
//     follow their files to the new names.
// The destination host must mount every datastore the VM then uses, or the
// task fails with InvalidDatastore and nothing changes; so does a
// destination folder that exists already (FileAlreadyExists). A copy that
// fails is undone and the task fails with the file fault.
//
// A refused vMotion is a fault rule (faults.go): {"kind": "soap_fault",
// "method": "RelocateVM_Task", "object": "<instanceUuid>", "fault":
// "MigrationNotReady", "message": "..."}. The faults hook runs before
// this one, so a refused relocation leaves the lists as they were; a
// task_fail rule fails the storage vMotion's task before any file moves.
//
// Guard: a call that would have vcsim look up the datastores of a VM's
// files on its host (ReconfigVM_Task, RefreshStorageInfo,
// CreateSnapshot_Task) is refused with InvalidDatastore when one of them is
// not mounted there, instead of panicking the simulator.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// installRelocateRelist hooks relistRelocated, the storage vMotion and the
// datastore guard into the Registry's method Handler; it must run before
// serving.
func installRelocateRelist(m *simulator.Model) {
	service := &relocateService{}
	service.Self = relocateServiceRef
	m.Map().Put(service)
	routeMethods(m, func(ctx *simulator.Context, method *simulator.Method) {
		relistRelocated(ctx, method)
		routeStorageVMotion(ctx, method)
	})
	next := m.Map().Handler
	m.Map().Handler = func(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		if fault := unmountedDatastoreGuard(ctx, method); fault != nil {
			return nil, fault
		}
		if next != nil {
			return next(ctx, method)
		}
		return nil, nil
	}
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
		relistOnHost(ctx, vm.Self, *vm.Runtime.Host, *ref)
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

// relistOnHost moves a VM from one host's "vm" list to another's.
func relistOnHost(ctx *simulator.Context, vm, from, to types.ManagedObjectReference) {
	if old, ok := ctx.Map.Get(from).(*simulator.HostSystem); ok {
		ctx.Map.RemoveReference(ctx, old, &old.Vm, vm)
	}
	if host, ok := ctx.Map.Get(to).(*simulator.HostSystem); ok {
		ctx.Map.AddReference(ctx, host, &host.Vm, vm)
	}
}

// relocateService answers the RelocateVM_Task calls that change the VM's
// home datastore (the hook points method.This here, as for exportService).
type relocateService struct {
	mo.ExtensibleManagedObject
}

var relocateServiceRef = types.ManagedObjectReference{Type: "VcdriverRelocateService", Value: "vcdriver-relocate"}

// routeStorageVMotion sends a RelocateVM_Task whose datastore is not the
// VM's home datastore to the relocateService.
func routeStorageVMotion(ctx *simulator.Context, method *simulator.Method) {
	if method.Name != "RelocateVM_Task" {
		return
	}
	req, ok := method.Body.(*types.RelocateVM_Task)
	if !ok || req.Spec.Datastore == nil {
		return
	}
	vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	dest, ok := ctx.Map.Get(*req.Spec.Datastore).(*simulator.Datastore)
	if !ok {
		return
	}
	var home object.DatastorePath
	ctx.WithLock(vm, func() {
		if vm.Config != nil {
			home.FromString(vm.Config.Files.VmPathName)
		}
	})
	if home.Datastore == "" || home.Datastore == dest.Name {
		return
	}
	if dir := path.Dir(home.Path); dir == "." || dir == "/" || dir == "" {
		return // a VM at the datastore's root: vcsim's relocation only
	}
	method.This = relocateServiceRef
}

// RelocateVMTask is the storage vMotion's task, on the VM.
func (s *relocateService) RelocateVMTask(ctx *simulator.Context, req *types.RelocateVM_Task) soap.HasFault {
	body := new(methods.RelocateVM_TaskBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	task := simulator.CreateTask(vm, "relocateVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, storageVMotion(ctx, vm, req)
	})
	body.Res = &types.RelocateVM_TaskResponse{Returnval: task.Run(ctx)}
	return body
}

// diskChain lists the file backings of a disk, the child first, then its
// parents.
func diskChain(backing types.BaseVirtualDeviceBackingInfo) []*types.VirtualDeviceFileBackingInfo {
	var chain []*types.VirtualDeviceFileBackingInfo
	for backing != nil {
		switch b := backing.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			chain = append(chain, &b.VirtualDeviceFileBackingInfo)
			if b.Parent == nil {
				return chain
			}
			backing = b.Parent
		case *types.VirtualDiskSeSparseBackingInfo:
			chain = append(chain, &b.VirtualDeviceFileBackingInfo)
			if b.Parent == nil {
				return chain
			}
			backing = b.Parent
		case *types.VirtualDiskSparseVer2BackingInfo:
			chain = append(chain, &b.VirtualDeviceFileBackingInfo)
			if b.Parent == nil {
				return chain
			}
			backing = b.Parent
		default:
			return chain // other disks (RDMs, ...) do not move
		}
	}
	return chain
}

// cloneDisk copies a disk and its backing chain, so that the VM's device
// list can be replaced rather than edited in place.
func cloneDisk(d *types.VirtualDisk) *types.VirtualDisk {
	c := *d
	c.Backing = cloneDiskBacking(d.Backing)
	return &c
}

func cloneDiskBacking(backing types.BaseVirtualDeviceBackingInfo) types.BaseVirtualDeviceBackingInfo {
	switch b := backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		c := *b
		if b.Parent != nil {
			c.Parent = cloneDiskBacking(b.Parent).(*types.VirtualDiskFlatVer2BackingInfo)
		}
		return &c
	case *types.VirtualDiskSeSparseBackingInfo:
		c := *b
		if b.Parent != nil {
			c.Parent = cloneDiskBacking(b.Parent).(*types.VirtualDiskSeSparseBackingInfo)
		}
		return &c
	case *types.VirtualDiskSparseVer2BackingInfo:
		c := *b
		if b.Parent != nil {
			c.Parent = cloneDiskBacking(b.Parent).(*types.VirtualDiskSparseVer2BackingInfo)
		}
		return &c
	}
	return backing
}

// plannedFile is one disk of a chain that moves: its descriptor and extents.
type plannedFile struct {
	src, dst           object.DatastorePath
	srcLocal, dstLocal string
	extents            []string // the source's extent file names (relative), in order
	newExtents         []string
	parent             string // the chain's next element, its old datastore path ("" at the end)
	shared             bool   // a parent outside the VM's folder: copied, the source kept
}

// storageVMotion moves the VM's files to req.Spec.Datastore (and its
// disks to their locators' datastores), runs vcsim's relocation and points
// the VM at the new files. It runs in the task, with the VM locked on
// behalf of ctx.
func storageVMotion(ctx *simulator.Context, vm *simulator.VirtualMachine, req *types.RelocateVM_Task) types.BaseMethodFault {
	dest, ok := ctx.Map.Get(*req.Spec.Datastore).(*simulator.Datastore)
	if !ok {
		return &types.InvalidArgument{InvalidProperty: "spec.datastore"}
	}
	var (
		home    object.DatastorePath
		files   types.VirtualMachineFileInfo
		devices object.VirtualDeviceList
		hostRef types.ManagedObjectReference
	)
	ctx.WithLock(vm, func() {
		home.FromString(vm.Config.Files.VmPathName)
		files = vm.Config.Files
		devices = object.VirtualDeviceList(vm.Config.Hardware.Device)
		hostRef = *vm.Runtime.Host
	})
	if req.Spec.Host != nil {
		hostRef = *req.Spec.Host
	}
	host, ok := ctx.Map.Get(hostRef).(*simulator.HostSystem)
	if !ok {
		return &types.InvalidArgument{InvalidProperty: "spec.host"}
	}
	folder := path.Dir(home.Path)
	inHome := func(p object.DatastorePath) (string, bool) {
		if p.Datastore != home.Datastore {
			return "", false
		}
		rel, ok := strings.CutPrefix(p.Path, folder+"/")
		return rel, ok && rel != ""
	}
	mounted := func(name string) *simulator.Datastore {
		ds, _ := ctx.Map.FindByName(name, host.Datastore).(*simulator.Datastore)
		return ds
	}
	if mounted(dest.Name) == nil {
		return &types.InvalidDatastore{Datastore: &dest.Self, Name: dest.Name}
	}

	// Plan: where each chain element goes.
	newHome := object.DatastorePath{Datastore: dest.Name, Path: folder}
	newHomeLocal := datastoreFile(ctx, newHome)
	if _, err := os.Lstat(newHomeLocal); err == nil {
		return &types.FileAlreadyExists{FileFault: types.FileFault{File: newHome.String()}}
	}
	moves := map[string]*plannedFile{} // old datastore path -> its move
	var order []*plannedFile
	used := map[string]bool{} // new local paths taken
	take := func(p object.DatastorePath) string {
		local := datastoreFile(ctx, p)
		used[local] = true
		return local
	}
	unique := func(ds, base string) object.DatastorePath {
		stem := strings.TrimSuffix(base, ".vmdk")
		for i := 0; ; i++ {
			name := stem
			if i > 0 {
				name = fmt.Sprintf("%s-%d", stem, i)
			}
			p := object.DatastorePath{Datastore: ds, Path: folder + "/" + name + ".vmdk"}
			flat := object.DatastorePath{Datastore: ds, Path: folder + "/" + simulator.VirtualDiskBackingFileName(name+".vmdk")}
			if !used[datastoreFile(ctx, p)] && !used[datastoreFile(ctx, flat)] {
				if _, err := os.Lstat(datastoreFile(ctx, p)); err != nil {
					return p
				}
			}
		}
	}
	// Every file of the folder keeps its name in the new one.
	srcHomeLocal := datastoreFile(ctx, object.DatastorePath{Datastore: home.Datastore, Path: folder})
	_ = filepath.WalkDir(srcHomeLocal, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(srcHomeLocal, p)
			used[filepath.Join(newHomeLocal, rel)] = true
		}
		return nil
	})
	locators := map[int32]types.VirtualMachineRelocateSpecDiskLocator{}
	for _, l := range req.Spec.Disk {
		locators[l.DiskId] = l
	}
	needed := map[string]bool{dest.Name: true} // datastores the VM uses afterwards
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		target, moveType := dest.Name, req.Spec.DiskMoveType
		if l, ok := locators[disk.Key]; ok {
			if ds, ok := ctx.Map.Get(l.Datastore).(*simulator.Datastore); ok {
				target = ds.Name
			}
			if l.DiskMoveType != "" {
				moveType = l.DiskMoveType
			}
		}
		chain := diskChain(disk.Backing)
		for i, b := range chain {
			var p object.DatastorePath
			if !p.FromString(b.FileName) {
				break
			}
			if _, ok := moves[p.String()]; ok {
				continue
			}
			rel, ok := inHome(p)
			if p.Datastore == target || (i > 0 && !ok && moveType == string(types.VirtualMachineRelocateDiskMoveOptionsMoveChildMostDiskBacking)) {
				needed[p.Datastore] = true
				continue
			}
			mv := &plannedFile{src: p, srcLocal: datastoreFile(ctx, p), shared: i > 0 && !ok}
			if i+1 < len(chain) {
				mv.parent = chain[i+1].FileName
			}
			if ok {
				mv.dst = object.DatastorePath{Datastore: target, Path: folder + "/" + rel}
			} else {
				mv.dst = unique(target, path.Base(p.Path))
			}
			mv.dstLocal = take(mv.dst)
			extents, err := descriptorExtents(mv.srcLocal)
			if err != nil {
				return fileFault(p.String(), err)
			}
			mv.extents = extents
			for j, e := range extents {
				name := simulator.VirtualDiskBackingFileName(path.Base(mv.dst.Path))
				if len(extents) > 1 {
					name = fmt.Sprintf("%s-s%03d.vmdk", strings.TrimSuffix(path.Base(mv.dst.Path), ".vmdk"), j+1)
				}
				if _, ok := inHome(p); ok && !strings.Contains(e, "/") && target == dest.Name && path.Base(mv.dst.Path) == path.Base(p.Path) {
					name = e // a file of the VM's folder keeps its names
				}
				mv.newExtents = append(mv.newExtents, name)
				take(object.DatastorePath{Datastore: target, Path: folder + "/" + name})
			}
			needed[target] = true
			moves[p.String()] = mv
			order = append(order, mv)
		}
	}
	for name := range needed {
		if ds := mounted(name); ds == nil {
			var ref *types.ManagedObjectReference
			for _, e := range ctx.Map.All("Datastore") {
				if e.Entity().Name == name {
					r := e.Reference()
					ref = &r
				}
			}
			return &types.InvalidDatastore{Datastore: ref, Name: name}
		}
	}

	// The folder's other files: the disks' files go with their disks.
	diskFiles := map[string]bool{}
	for _, mv := range order {
		diskFiles[mv.srcLocal] = true
		for _, e := range mv.extents {
			diskFiles[filepath.Join(filepath.Dir(mv.srcLocal), e)] = true
		}
	}
	var homeFiles []string // relative to the folder
	err := filepath.WalkDir(srcHomeLocal, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !diskFiles[p] {
			rel, _ := filepath.Rel(srcHomeLocal, p)
			homeFiles = append(homeFiles, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fileFault(home.String(), err)
	}

	// Copy; undo on failure.
	var created []string
	undo := func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i])
		}
		_ = removeEmptyDirs(newHomeLocal)
		for _, mv := range order {
			_ = removeEmptyDirs(filepath.Dir(mv.dstLocal))
		}
	}
	copyTo := func(src, dst string) error {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		created = append(created, dst)
		return copySparse(src, dst)
	}
	for _, rel := range homeFiles {
		if err := copyTo(filepath.Join(srcHomeLocal, rel), filepath.Join(newHomeLocal, rel)); err != nil {
			undo()
			return fileFault(home.String(), err)
		}
	}
	newPath := func(old string) string {
		if mv, ok := moves[old]; ok {
			return mv.dst.String()
		}
		return old
	}
	for _, mv := range order {
		srcDir, dstDir := filepath.Dir(mv.srcLocal), filepath.Dir(mv.dstLocal)
		for j, e := range mv.extents {
			src := filepath.Join(srcDir, filepath.FromSlash(e))
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
				continue // a missing extent reads as zeros (nfc_export.go)
			}
			if err := copyTo(src, filepath.Join(dstDir, mv.newExtents[j])); err != nil {
				undo()
				return fileFault(mv.src.String(), err)
			}
		}
		hint := ""
		if mv.parent != "" {
			var pp object.DatastorePath
			pp.FromString(newPath(mv.parent))
			hint = parentHint(mv.dstLocal, datastoreFile(ctx, pp))
		}
		if err := os.MkdirAll(dstDir, 0o755); err != nil {
			undo()
			return fileFault(mv.dst.String(), err)
		}
		created = append(created, mv.dstLocal)
		if err := copyDescriptor(mv.srcLocal, mv.dstLocal, mv.newExtents, hint); err != nil {
			undo()
			return fileFault(mv.src.String(), err)
		}
	}

	// vcsim's relocation: host, pool, folder, deviceChange, events; it
	// still sees the old files, on the old host.
	inner := vm.RelocateVMTask(ctx, req).(*methods.RelocateVM_TaskBody)
	if inner.Fault_ != nil || inner.Res == nil {
		undo()
		return &types.SystemError{Reason: "relocation refused"}
	}
	task, _ := ctx.Map.Get(inner.Res.Returnval).(*simulator.Task)
	if task != nil {
		task.Wait()
		var fault *types.LocalizedMethodFault
		ctx.WithLock(task, func() { fault = task.Info.Error })
		if fault != nil {
			undo()
			return fault.Fault
		}
	}

	// Point the VM at its new files.
	oldHomePrefix := dsPath(home.Datastore, folder) + "/"
	newHomePrefix := newHome.String() + "/"
	rename := func(name string) string {
		if n := newPath(name); n != name {
			return n
		}
		if rest, ok := strings.CutPrefix(name, oldHomePrefix); ok {
			return newHomePrefix + rest
		}
		if name == oldHomePrefix[:len(oldHomePrefix)-1] {
			return newHome.String()
		}
		return name
	}
	// A descriptor's extent: the layout names "<disk>-flat.vmdk".
	for _, mv := range order {
		flat := func(p object.DatastorePath) object.DatastorePath {
			return object.DatastorePath{Datastore: p.Datastore, Path: path.Join(path.Dir(p.Path), simulator.VirtualDiskBackingFileName(path.Base(p.Path)))}
		}
		moves[dsPath(mv.src.Datastore, flat(mv.src).Path)] = &plannedFile{dst: flat(mv.dst)}
	}
	dsRef := func(name string) *types.ManagedObjectReference {
		if ds := mounted(name); ds != nil {
			return &ds.Self
		}
		return nil
	}
	ctx.WithLock(vm, func() {
		newDevices := make([]types.BaseVirtualDevice, 0, len(vm.Config.Hardware.Device))
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				disk = cloneDisk(disk)
				for _, b := range diskChain(disk.Backing) {
					if n := rename(b.FileName); n != b.FileName {
						b.FileName = n
						var p object.DatastorePath
						p.FromString(n)
						b.Datastore = dsRef(p.Datastore)
					}
				}
				d = disk
			} else if fb, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
				if info := fb.GetVirtualDeviceFileBackingInfo(); rename(info.FileName) != info.FileName {
					if nb, ok := cloneFileBacking(fb); ok {
						info := nb.GetVirtualDeviceFileBackingInfo()
						info.FileName = rename(info.FileName)
						var p object.DatastorePath
						p.FromString(info.FileName)
						info.Datastore = dsRef(p.Datastore)
						dev := cloneDevice(d)
						dev.GetVirtualDevice().Backing = nb.(types.BaseVirtualDeviceBackingInfo)
						d = dev
					}
				}
			}
			newDevices = append(newDevices, d)
		}
		files := files
		files.VmPathName = rename(files.VmPathName)
		files.SnapshotDirectory = rename(files.SnapshotDirectory)
		files.SuspendDirectory = rename(files.SuspendDirectory)
		files.LogDirectory = rename(files.LogDirectory)
		files.FtMetadataDirectory = rename(files.FtMetadataDirectory)

		layout := vm.Layout
		if layout != nil {
			l := *layout
			l.SwapFile = rename(l.SwapFile)
			l.Disk = nil
			for _, dl := range layout.Disk {
				dl.DiskFile = renameAll(dl.DiskFile, rename)
				l.Disk = append(l.Disk, dl)
			}
			l.Snapshot = nil
			for _, sl := range layout.Snapshot {
				sl.SnapshotFile = renameAll(sl.SnapshotFile, rename)
				l.Snapshot = append(l.Snapshot, sl)
			}
			layout = &l
		}
		layoutEx := vm.LayoutEx
		if layoutEx != nil {
			l := *layoutEx
			l.File = nil
			for _, f := range layoutEx.File {
				f.Name = rename(f.Name)
				var p object.DatastorePath
				if p.FromString(f.Name) {
					if fi, err := os.Stat(datastoreFile(ctx, p)); err == nil {
						f.Size, f.UniqueSize = fi.Size(), fi.Size()
					}
				}
				l.File = append(l.File, f)
			}
			layoutEx = &l
		}

		// The datastores the VM's files are on now.
		var dss []types.ManagedObjectReference
		add := func(name string) {
			if ref := dsRef(name); ref != nil && simulator.FindReference(dss, *ref) == nil {
				dss = append(dss, *ref)
			}
		}
		var p object.DatastorePath
		p.FromString(files.VmPathName)
		add(p.Datastore)
		for _, d := range newDevices {
			if disk, ok := d.(*types.VirtualDisk); ok {
				for _, b := range diskChain(disk.Backing) {
					if p.FromString(b.FileName) {
						add(p.Datastore)
					}
				}
			} else if fb, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
				if p.FromString(fb.GetVirtualDeviceFileBackingInfo().FileName) {
					add(p.Datastore)
				}
			}
		}
		// vcsim leaves the files of disks no longer attached in
		// layoutEx (a linked clone replaced by a copy keeps its old
		// parent there), and its next reconfigure looks each file's
		// datastore up on the VM's host: keep only files on the
		// datastores the VM uses now.
		if layoutEx != nil {
			kept := layoutEx.File[:0:0]
			for _, f := range layoutEx.File {
				if p.FromString(f.Name) {
					if ref := dsRef(p.Datastore); ref == nil || simulator.FindReference(dss, *ref) == nil {
						continue
					}
				}
				kept = append(kept, f)
			}
			layoutEx.File = kept
		}
		var storage *types.VirtualMachineStorageInfo
		if vm.Storage != nil && layoutEx != nil {
			storage = &types.VirtualMachineStorageInfo{PerDatastoreUsage: storageUsage(ctx, layoutEx, newDevices, dsRef), Timestamp: vm.Storage.Timestamp}
		}

		for _, ref := range vm.Datastore {
			if simulator.FindReference(dss, ref) == nil {
				if ds, ok := ctx.Map.Get(ref).(*simulator.Datastore); ok {
					ctx.Map.RemoveReference(ctx, ds, &ds.Vm, vm.Self)
				}
			}
		}
		for _, ref := range dss {
			if ds, ok := ctx.Map.Get(ref).(*simulator.Datastore); ok {
				ctx.WithLock(ds, func() {
					if simulator.FindReference(ds.Vm, vm.Self) == nil {
						ds.Vm = append(ds.Vm, vm.Self)
					}
				})
			}
		}

		changes := []types.PropertyChange{
			{Name: "config.hardware.device", Val: newDevices},
			{Name: "config.files", Val: files},
			{Name: "summary.config.vmPathName", Val: files.VmPathName},
			{Name: "datastore", Val: dss},
		}
		if layout != nil {
			changes = append(changes, types.PropertyChange{Name: "layout", Val: layout})
		}
		if layoutEx != nil {
			changes = append(changes, types.PropertyChange{Name: "layoutEx", Val: layoutEx})
		}
		if storage != nil {
			changes = append(changes, types.PropertyChange{Name: "storage", Val: storage})
		}
		ctx.Update(vm, changes)
	})

	// Storage policies follow the VM home and disks (storage_policies.go).
	renamed := map[string]string{files.VmPathName: rename(files.VmPathName)}
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		for _, b := range diskChain(d.(*types.VirtualDisk).Backing) {
			renamed[b.FileName] = rename(b.FileName)
		}
	}
	renameProfiles(ctx, renamed)

	// Remove what moved (copied shared parents stay).
	for _, rel := range homeFiles {
		_ = os.Remove(filepath.Join(srcHomeLocal, rel))
	}
	for _, mv := range order {
		if mv.shared {
			continue
		}
		for _, e := range mv.extents {
			_ = os.Remove(filepath.Join(filepath.Dir(mv.srcLocal), filepath.FromSlash(e)))
		}
		_ = os.Remove(mv.srcLocal)
	}
	_ = removeEmptyDirs(srcHomeLocal)
	return nil
}

// dsPath is "[ds] p".
func dsPath(ds, p string) string {
	dp := object.DatastorePath{Datastore: ds, Path: p}
	return dp.String()
}

func renameAll(names []string, rename func(string) string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = rename(n)
	}
	return out
}

// storageUsage is storage.perDatastoreUsage over the layout's files, as
// vcsim's updateStorage computes it.
func storageUsage(ctx *simulator.Context, layoutEx *types.VirtualMachineFileLayoutEx, devices []types.BaseVirtualDevice, dsRef func(string) *types.ManagedObjectReference) []types.VirtualMachineUsageOnDatastore {
	var usage []types.VirtualMachineUsageOnDatastore
	for _, f := range layoutEx.File {
		var p object.DatastorePath
		if !p.FromString(f.Name) {
			continue
		}
		ref := dsRef(p.Datastore)
		if ref == nil {
			continue
		}
		i := -1
		for j := range usage {
			if usage[j].Datastore == *ref {
				i = j
			}
		}
		if i < 0 {
			usage = append(usage, types.VirtualMachineUsageOnDatastore{Datastore: *ref})
			i = len(usage) - 1
		}
		usage[i].Committed += f.Size
		if path.Ext(f.Name) == ".vmdk" {
			usage[i].Unshared += f.Size
		}
		for _, d := range devices {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok && b.GetVirtualDeviceFileBackingInfo().FileName == f.Name {
					usage[i].Uncommitted += disk.CapacityInBytes
				}
			}
		}
	}
	return usage
}

// cloneFileBacking copies a non-disk device's file backing (ISO, floppy
// image, ...) by value.
func cloneFileBacking(b types.BaseVirtualDeviceFileBackingInfo) (types.BaseVirtualDeviceFileBackingInfo, bool) {
	switch x := b.(type) {
	case *types.VirtualCdromIsoBackingInfo:
		c := *x
		return &c, true
	case *types.VirtualFloppyImageBackingInfo:
		c := *x
		return &c, true
	case *types.VirtualSerialPortFileBackingInfo:
		c := *x
		return &c, true
	case *types.VirtualParallelPortFileBackingInfo:
		c := *x
		return &c, true
	}
	return nil, false
}

// cloneDevice copies the device types cloneFileBacking's backings go with.
func cloneDevice(d types.BaseVirtualDevice) types.BaseVirtualDevice {
	switch x := d.(type) {
	case *types.VirtualCdrom:
		c := *x
		return &c
	case *types.VirtualFloppy:
		c := *x
		return &c
	case *types.VirtualSerialPort:
		c := *x
		return &c
	case *types.VirtualParallelPort:
		c := *x
		return &c
	}
	return d
}

func fileFault(file string, err error) types.BaseMethodFault {
	if errors.Is(err, fs.ErrNotExist) {
		return &types.FileNotFound{FileFault: types.FileFault{File: file}}
	}
	return &types.FileFault{File: file, VimFault: types.VimFault{MethodFault: types.MethodFault{
		FaultMessage: []types.LocalizableMessage{{Key: "vcsim.relocate", Message: err.Error()}}}}}
}

// removeEmptyDirs removes dir and the empty directories in it, if that
// leaves it empty.
func removeEmptyDirs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			_ = removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	return os.Remove(dir)
}

var (
	descriptorExtentRE = regexp.MustCompile(`^(\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+)"([^"]*)"(.*)$`)
	parentHintRE       = regexp.MustCompile(`^(\s*parentFileNameHint\s*=\s*)"[^"]*"(.*)$`)
)

// isTextDescriptor tells a text descriptor from a binary disk (hosted
// sparse "KDMV", "COWD") by its first bytes.
func isTextDescriptor(head []byte) bool {
	return !bytes.HasPrefix(head, []byte("KDMV")) && !bytes.HasPrefix(head, []byte("COWD")) && !bytes.Contains(head, []byte{0})
}

// descriptorExtents lists the files a disk descriptor's extents name (none
// for a binary disk, whose data is in the file itself).
func descriptorExtents(descriptor string) ([]string, error) {
	data, err := readDescriptor(descriptor)
	if err != nil || data == nil {
		return nil, err
	}
	var extents []string
	for _, line := range strings.Split(string(data), "\n") {
		if m := descriptorExtentRE.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil && m[2] != "" {
			extents = append(extents, m[2])
		}
	}
	return extents, nil
}

// readDescriptor reads a text descriptor; nil for a binary disk.
func readDescriptor(descriptor string) ([]byte, error) {
	f, err := os.Open(descriptor)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	if !isTextDescriptor(head[:n]) {
		return nil, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// copyDescriptor writes src's descriptor at dst with its extents renamed
// in order to newExtents and its parentFileNameHint (if it has one) set to
// hint; a binary disk is copied as it is.
func copyDescriptor(src, dst string, newExtents []string, hint string) error {
	data, err := readDescriptor(src)
	if err != nil {
		return err
	}
	if data == nil {
		return copySparse(src, dst)
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for i, line := range lines {
		if m := descriptorExtentRE.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil && m[2] != "" && n < len(newExtents) {
			lines[i] = m[1] + `"` + newExtents[n] + `"` + m[3]
			n++
		} else if m := parentHintRE.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil && hint != "" {
			lines[i] = m[1] + `"` + hint + `"` + m[2]
		}
	}
	return os.WriteFile(dst, []byte(strings.Join(lines, "\n")), 0o644)
}

// copySparse copies src to a new file dst, leaving its all-zero blocks as
// holes.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			block := buf[:n]
			if isZero(block) {
				_, err = out.Seek(int64(n), io.SeekCurrent)
			} else {
				_, err = out.Write(block)
			}
			size += int64(n)
			if err != nil {
				break
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if err == nil {
		err = out.Truncate(size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func isZero(b []byte) bool {
	for len(b) >= len(zeroGrain) {
		if !bytes.Equal(b[:len(zeroGrain)], zeroGrain[:]) {
			return false
		}
		b = b[len(zeroGrain):]
	}
	return bytes.Equal(b, zeroGrain[:len(b)])
}

// unmountedDatastoreGuard refuses, with InvalidDatastore, a call that
// would have vcsim look up a datastore of the VM's files (its disks,
// layoutEx) that its host does not mount (findDatastore would panic).
func unmountedDatastoreGuard(ctx *simulator.Context, method *simulator.Method) types.BaseMethodFault {
	switch method.Name {
	case "ReconfigVM_Task", "RefreshStorageInfo", "CreateSnapshot_Task":
	default:
		return nil
	}
	vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	var names []string
	var hostRef *types.ManagedObjectReference
	ctx.WithLock(vm, func() {
		hostRef = vm.Runtime.Host
		if vm.Config != nil {
			for _, d := range vm.Config.Hardware.Device {
				if disk, ok := d.(*types.VirtualDisk); ok {
					for _, b := range diskChain(disk.Backing) {
						names = append(names, b.FileName)
					}
				}
			}
		}
		if vm.LayoutEx != nil {
			for _, f := range vm.LayoutEx.File {
				names = append(names, f.Name)
			}
		}
	})
	if hostRef == nil {
		return nil
	}
	host, ok := ctx.Map.Get(*hostRef).(*simulator.HostSystem)
	if !ok {
		return nil
	}
	var dss []types.ManagedObjectReference
	ctx.WithLock(host, func() { dss = append(dss, host.Datastore...) })
	for _, n := range names {
		var p object.DatastorePath
		if !p.FromString(n) {
			continue
		}
		if _, ok := ctx.Map.FindByName(p.Datastore, dss).(*simulator.Datastore); !ok {
			return &types.InvalidDatastore{Name: p.Datastore}
		}
	}
	return nil
}
