package main

// Import leases (ResourcePool.ImportVApp) whose disk URLs take a
// streamOptimized VMDK and keep it as a thin disk, as ESX does.
//
// What vcsim lacks, and what is simulated here:
//   - vcsim's NFC handler accepts PUT and POST on an ImportVApp lease's
//     device URLs but discards the bytes. Here an upload to a disk URL (PUT
//     or POST, any Content-Type, with a Content-Length or chunked) is
//     decoded as it arrives (stream_optimized_read.go) into the disk vcsim
//     made for the VM, kept the way vCenter keeps a thin disk and the rest
//     of the launcher reads one: the descriptor at the disk's path
//     (createType "vmfs", one VMFS extent of the stream's capacity) and
//     the -flat.vmdk extent, a sparse file of exactly the capacity in
//     which only the data is written. A body that is not a whole
//     streamOptimized VMDK is answered 400 with the reason in one line; the
//     lease stays ready, for Abort. Other files (not disks) are stored as
//     they come.
//   - HttpNfcLeaseAbort leaves vcsim's imported VM behind; vCenter removes
//     it and its files, and so does this. HttpNfcLeaseComplete leaves it
//     registered. Either ends the transfers still running.
//   - HttpNfcLeaseGetManifest lists what was received here (sha1, size,
//     the disk's capacity and data), not what vcsim's handler saw.
//   - HttpNfcLeasePullFromUrls_Task is missing from vcsim: nfc_pull.go.
//   - GET /vcdriver/nfc (nfc_stats.go) lists the import leases: state, and
//     the bytes received (uploads), pulled and written as data, per file.
//
// As in nfc_export.go, the Registry's method Handler hook points these
// calls at importService (no SOAP rewriting); the leases are vcsim's own,
// in the caller's session, so HttpNfcLeaseProgress and the
// PropertyCollector work on them unchanged.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

// imports keeps the leases made by ImportVApp.
type imports struct {
	m *simulator.Model

	mu     sync.Mutex
	leases map[string]*importLease // lease moref value -> lease
}

type importLease struct {
	ref     types.ManagedObjectReference
	session *simulator.Registry // holds the lease until Complete/Abort
	lease   *simulator.HttpNfcLease
	created time.Time
	busy    sync.WaitGroup // transfers in flight

	// Guarded by imports.mu.
	state  string // "" (as vcsim's lease says), completed, aborted
	entity types.ManagedObjectReference
	files  []*importFile  // once the lease is ready, in device URL order
	stops  map[int]func() // how to stop each transfer in flight
	nextID int
}

type importFile struct {
	name      string // the device URL's last path element
	key       string // the device URL's key and importKey
	importKey string
	file      string // datastore path
	local     string // its path on this machine
	disk      bool
	adapter   string // disks only, for the descriptor's ddb.adapterType

	mu sync.Mutex // one transfer at a time writes the file

	received, pulled, written atomic.Int64

	// Guarded by imports.mu.
	state     string // waiting, transferring, done, error
	err       string // the last failed transfer's reason
	done      int    // transfers that succeeded
	capacity  int64  // bytes, of the last disk decoded
	grains    int    // grains in the last disk decoded
	zeros     int    // of which inflated to all zeros: sent in vain
	sum       []byte // sha1 of the last transfer's content (nil: none, or it failed)
	size      int64  // its size
	populated int64  // the data it wrote
}

func newImports(m *simulator.Model) *imports {
	return &imports{m: m, leases: map[string]*importLease{}}
}

// own is a context for calls on our own behalf (locks, updates).
func (x *imports) own() *simulator.Context {
	return &simulator.Context{Map: x.m.Map(), Context: context.Background()}
}

// importService answers ImportVApp and the lease methods of its leases;
// see exportService for why calls are pointed at an object of ours.
type importService struct {
	mo.ExtensibleManagedObject
	x *imports
}

var importServiceRef = types.ManagedObjectReference{Type: "VcdriverImportService", Value: "vcdriver-imports"}

// install routes ImportVApp and the import lease methods here; it must
// run before serving.
func (x *imports) install(m *simulator.Model) {
	service := &importService{x: x}
	service.Self = importServiceRef
	m.Map().Put(service)
	routeMethods(m, x.route)
}

func (x *imports) route(ctx *simulator.Context, method *simulator.Method) {
	switch method.Name {
	case "ImportVApp":
		switch ctx.Map.Get(method.This).(type) {
		case *simulator.ResourcePool, *simulator.VirtualApp:
			method.This = importServiceRef
		}
	case "HttpNfcLeaseComplete", "HttpNfcLeaseAbort", "HttpNfcLeaseGetManifest", "HttpNfcLeasePullFromUrls_Task":
		if x.lease(method.This.Value) != nil {
			method.This = importServiceRef
		}
	}
}

func (x *imports) lease(id string) *importLease {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.leases[id]
}

// ImportVApp is vcsim's, noting the lease it makes.
func (s *importService) ImportVApp(ctx *simulator.Context, req *types.ImportVApp) soap.HasFault {
	var res soap.HasFault
	switch pool := ctx.Map.Get(req.This).(type) {
	case *simulator.ResourcePool:
		ctx.WithLock(pool, func() { res = pool.ImportVApp(ctx, req) })
	case *simulator.VirtualApp:
		ctx.WithLock(pool, func() { res = pool.ImportVApp(ctx, req) })
	default:
		return &methods.ImportVAppBody{Fault_: notFound(req.This)}
	}
	if body, ok := res.(*methods.ImportVAppBody); ok && body.Res != nil {
		if lease, ok := ctx.Session.Get(body.Res.Returnval).(*simulator.HttpNfcLease); ok {
			s.x.mu.Lock()
			s.x.leases[lease.Self.Value] = &importLease{
				ref:     lease.Self,
				session: ctx.Session.Registry,
				lease:   lease,
				created: time.Now(),
				stops:   map[int]func(){},
			}
			s.x.mu.Unlock()
		}
	}
	return res
}

// sessionLease is the caller's lease, as vcsim's dispatcher would find it.
func sessionLease(ctx *simulator.Context, ref types.ManagedObjectReference) (*simulator.HttpNfcLease, *soap.Fault) {
	if lease, ok := ctx.Session.Get(ref).(*simulator.HttpNfcLease); ok {
		return lease, nil
	}
	return nil, notFound(ref)
}

func (s *importService) HttpNfcLeaseComplete(ctx *simulator.Context, req *types.HttpNfcLeaseComplete) soap.HasFault {
	lease, fault := sessionLease(ctx, req.This)
	if fault != nil {
		return &methods.HttpNfcLeaseCompleteBody{Fault_: fault}
	}
	var res soap.HasFault
	ctx.WithLock(lease, func() { res = lease.HttpNfcLeaseComplete(ctx, req) })
	s.x.finish(req.This, "completed")
	return res
}

func (s *importService) HttpNfcLeaseAbort(ctx *simulator.Context, req *types.HttpNfcLeaseAbort) soap.HasFault {
	lease, fault := sessionLease(ctx, req.This)
	if fault != nil {
		return &methods.HttpNfcLeaseAbortBody{Fault_: fault}
	}
	var res soap.HasFault
	ctx.WithLock(lease, func() { res = lease.HttpNfcLeaseAbort(ctx, req) })
	if l := s.x.finish(req.This, "aborted"); l != nil {
		s.x.removeVM(ctx, l)
	}
	return res
}

func (s *importService) HttpNfcLeaseGetManifest(ctx *simulator.Context, req *types.HttpNfcLeaseGetManifest) soap.HasFault {
	if _, fault := sessionLease(ctx, req.This); fault != nil {
		return &methods.HttpNfcLeaseGetManifestBody{Fault_: fault}
	}
	entries := []types.HttpNfcLeaseManifestEntry{}
	if l := s.x.lease(req.This.Value); l != nil {
		s.x.mu.Lock()
		for _, f := range l.files {
			if f.sum == nil {
				continue
			}
			entries = append(entries, types.HttpNfcLeaseManifestEntry{
				Key:           f.key,
				Sha1:          hex.EncodeToString(f.sum),
				Size:          f.size,
				Disk:          f.disk,
				Capacity:      f.capacity,
				PopulatedSize: f.populated,
			})
		}
		s.x.mu.Unlock()
	}
	return &methods.HttpNfcLeaseGetManifestBody{Res: &types.HttpNfcLeaseGetManifestResponse{Returnval: entries}}
}

// finish notes the end of a lease and stops its transfers, waiting a
// little for them to let go of its files. It returns the lease (nil if it
// is not ours or had already ended).
func (x *imports) finish(ref types.ManagedObjectReference, state string) *importLease {
	x.mu.Lock()
	l, ok := x.leases[ref.Value]
	if !ok || l.state != "" {
		x.mu.Unlock()
		return nil
	}
	l.state = state
	for _, stop := range l.stops {
		stop()
	}
	x.mu.Unlock()

	done := make(chan struct{})
	go func() {
		l.busy.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		log.Printf("nfc: transfers into lease %s still running after it was %s", ref.Value, state)
	}
	return l
}

// removeVM destroys an aborted lease's VM and deletes its files, as
// vCenter does. vcsim's Destroy_Task deletes the VM's folder in a task of
// its own that nobody waits for, so the folder (and the disks, wherever
// they are) are deleted here too: gone when the Abort call returns.
func (x *imports) removeVM(ctx *simulator.Context, l *importLease) {
	// An Abort can come while ImportVApp still makes the VM.
	var state types.HttpNfcLeaseState
	var info *types.HttpNfcLeaseInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ctx.WithLock(l.lease, func() { state, info = l.lease.State, l.lease.Info })
		if state != types.HttpNfcLeaseStateInitializing || time.Now().After(deadline) {
			break
		}
	}
	if info == nil {
		return // ImportVApp failed: no VM
	}
	x.sync(l) // the lease's files, if nobody asked yet
	vm, ok := ctx.Map.Get(info.Entity).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var folder string
	var power types.VirtualMachinePowerState
	ctx.WithLock(vm, func() {
		power = vm.Runtime.PowerState
		var p object.DatastorePath
		if p.FromString(vm.Config.Files.VmPathName) && path.Dir(p.Path) != "." && path.Dir(p.Path) != "/" {
			folder = datastoreFile(ctx, object.DatastorePath{Datastore: p.Datastore, Path: path.Dir(p.Path)})
		}
	})
	var files []string // the disks (other files may be shared, e.g. ISOs)
	for _, f := range x.filesOf(l) {
		if f.disk {
			_, flat := diskDescriptor(f.local)
			files = append(files, f.local, filepath.Join(filepath.Dir(f.local), flat))
		}
	}

	if power != types.VirtualMachinePowerStatePoweredOff {
		var res soap.HasFault
		ctx.WithLock(vm, func() { res = vm.PowerOffVMTask(ctx, &types.PowerOffVM_Task{This: vm.Self}) })
		if body, ok := res.(*methods.PowerOffVM_TaskBody); ok && body.Res != nil {
			waitTaskRef(ctx, body.Res.Returnval)
		}
	}
	var res soap.HasFault
	ctx.WithLock(vm, func() { res = vm.DestroyTask(ctx, &types.Destroy_Task{This: vm.Self}) })
	if body, ok := res.(*methods.Destroy_TaskBody); ok && body.Res != nil {
		if fault := waitTaskRef(ctx, body.Res.Returnval); fault != nil {
			log.Printf("nfc: destroy %s of aborted lease %s: %s", vm.Self.Value, l.ref.Value, fault.LocalizedMessage)
		}
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			log.Printf("nfc: aborted lease %s: %v", l.ref.Value, err)
		}
	}
	if folder != "" {
		if err := os.RemoveAll(folder); err != nil {
			log.Printf("nfc: aborted lease %s: %v", l.ref.Value, err)
		}
	}
}

// waitTaskRef waits for one of vcsim's tasks and returns its error.
func waitTaskRef(ctx *simulator.Context, ref types.ManagedObjectReference) *types.LocalizedMethodFault {
	task, ok := ctx.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil
	}
	task.Wait()
	var fault *types.LocalizedMethodFault
	ctx.WithLock(task, func() { fault = task.Info.Error })
	return fault
}

// sync reads the state of vcsim's lease: initializing, ready or error
// (with its message) unless the lease was completed or aborted. Once the
// lease is ready it notes the lease's files.
func (x *imports) sync(l *importLease) (string, string) {
	own := x.own()
	var state types.HttpNfcLeaseState
	var info *types.HttpNfcLeaseInfo
	var fault *types.LocalizedMethodFault
	own.WithLock(l.lease, func() { state, info, fault = l.lease.State, l.lease.Info, l.lease.Error })

	x.mu.Lock()
	known := l.files != nil
	x.mu.Unlock()
	if state == types.HttpNfcLeaseStateReady && info != nil && !known {
		files := x.resolve(own, info)
		x.mu.Lock()
		if l.files == nil {
			l.files, l.entity = files, info.Entity
		}
		x.mu.Unlock()
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case l.state != "":
		return l.state, ""
	case state == types.HttpNfcLeaseStateError && fault != nil:
		return "error", fault.LocalizedMessage
	}
	return string(state), ""
}

// resolve finds the lease's files among its VM's devices, as vcsim's
// ImportVApp named them.
func (x *imports) resolve(ctx *simulator.Context, info *types.HttpNfcLeaseInfo) []*importFile {
	type device struct {
		file    object.DatastorePath
		disk    bool
		adapter string
	}
	byName := map[string]device{}
	if vm, ok := ctx.Map.Get(info.Entity).(*simulator.VirtualMachine); ok {
		ctx.WithLock(vm, func() {
			list := object.VirtualDeviceList(vm.Config.Hardware.Device)
			for _, d := range list {
				backing, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
				if !ok {
					continue
				}
				var p object.DatastorePath
				if !p.FromString(backing.GetVirtualDeviceFileBackingInfo().FileName) {
					continue
				}
				dev := device{file: p}
				if disk, ok := d.(*types.VirtualDisk); ok {
					dev.disk, dev.adapter = true, adapterType(list.FindByKey(disk.ControllerKey))
				}
				byName[path.Base(p.Path)] = dev
			}
		})
	}
	files := []*importFile{}
	for _, u := range info.DeviceUrl {
		d, ok := byName[u.TargetId]
		if !ok {
			continue
		}
		files = append(files, &importFile{
			name:      u.TargetId,
			key:       u.Key,
			importKey: u.ImportKey,
			file:      d.file.String(),
			local:     datastoreFile(ctx, d.file),
			disk:      d.disk,
			adapter:   d.adapter,
			state:     "waiting",
		})
	}
	return files
}

func (x *imports) filesOf(l *importLease) []*importFile {
	x.mu.Lock()
	defer x.mu.Unlock()
	return l.files
}

// file finds a lease's file by its URL name.
func (x *imports) file(l *importLease, name string) *importFile {
	for _, f := range x.filesOf(l) {
		if f.name == name {
			return f
		}
	}
	return nil
}

// begin registers a transfer into f, stopped by stop should the lease end
// first; false if it has ended. The transfer reports its outcome to end.
func (x *imports) begin(l *importLease, f *importFile, stop func()) (end func(error), ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if l.state != "" {
		return nil, false
	}
	id := l.nextID
	l.nextID++
	l.stops[id] = stop
	l.busy.Add(1)
	f.state = "transferring"
	return func(err error) {
		x.mu.Lock()
		delete(l.stops, id)
		if err != nil {
			f.state, f.err = "error", err.Error()
		} else {
			f.state, f.err = "done", ""
			f.done++
		}
		x.mu.Unlock()
		l.busy.Done()
	}, true
}

// ended tells whether the lease was completed or aborted.
func (x *imports) ended(l *importLease) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return l.state != ""
}

func (x *imports) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
			strings.HasPrefix(r.URL.Path, nfcPathPrefix) && x.serveUpload(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveUpload takes an upload to one of our leases' URLs; false if the
// URL is not one of theirs.
func (x *imports) serveUpload(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPathPrefix), "/")
	if len(parts) != 2 {
		return false
	}
	l := x.lease(parts[0])
	if l == nil {
		return false
	}
	state, _ := x.sync(l)
	switch {
	case l.session.Get(l.ref) == nil || (state != "ready" && state != "initializing"):
		// Like vCenter, a completed or aborted lease (gone from the
		// session) takes nothing any more; nor does one in state error.
		http.Error(w, "lease is no longer valid", http.StatusNotFound)
		return true
	case state == "initializing":
		http.Error(w, "lease is not ready yet", http.StatusConflict)
		return true
	}
	f := x.file(l, parts[1])
	if f == nil {
		http.Error(w, "no such device in the lease", http.StatusNotFound)
		return true
	}

	rc := http.NewResponseController(w)
	end, ok := x.begin(l, f, func() { _ = rc.SetReadDeadline(time.Now()) })
	if !ok {
		http.Error(w, "lease is no longer valid", http.StatusNotFound)
		return true
	}
	body := &countingReader{r: r.Body, n: &f.received}
	err := x.store(f, body)
	if err != nil && !x.ended(l) {
		// Answer only once the client has sent everything: many stop
		// reading (and miss the answer) while their body is refused.
		_, _ = io.Copy(io.Discard, body)
	}
	end(err)
	var target *targetError
	switch {
	case err != nil && x.ended(l):
		http.Error(w, "lease is no longer valid", http.StatusNotFound)
	case errors.As(err, &target):
		log.Printf("nfc %s %s (%s): %v", r.Method, r.URL.Path, f.file, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case err != nil:
		log.Printf("nfc %s %s (%s): %v", r.Method, r.URL.Path, f.file, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusOK)
	}
	return true
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// store writes one file of a lease from src (an upload's body, a pulled
// file), a disk as decoded, another file as it is, and notes its sha1,
// size and data for the manifest. A transfer that fails (a stream cut
// short, a broken connection, ...) leaves what it wrote, as ESX does (a
// disk's extent holds the data decoded so far, its descriptor is not
// rewritten), and takes the file out of the manifest: it no longer holds
// what an earlier transfer brought.
func (x *imports) store(f *importFile, src io.Reader) error {
	sum := sha1.New()
	var size atomic.Int64
	content := &countingReader{r: io.TeeReader(src, sum), n: &size}
	f.mu.Lock()
	defer f.mu.Unlock()
	before := f.written.Load()
	var stats streamReadStats
	var err error
	if f.disk {
		stats, err = writeThinDisk(f.local, f.adapter, content, &f.written)
		if err == nil {
			_, _ = io.Copy(io.Discard, content) // what follows the end of the stream
		}
	} else {
		err = writeFile(f.local, content, &f.written)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err != nil {
		f.sum, f.size, f.populated = nil, 0, 0
		return err
	}
	f.sum, f.size, f.capacity, f.populated = sum.Sum(nil), size.Load(), stats.Capacity, f.written.Load()-before
	f.grains, f.zeros = stats.Grains, stats.ZeroGrains
	return nil
}

// writeFile stores a file that is not a disk as it comes.
func writeFile(local string, src io.Reader, written *atomic.Int64) error {
	out, err := os.Create(local)
	if err != nil {
		return &targetError{err}
	}
	n, err := io.Copy(targetWriter{out}, src)
	written.Add(n)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = &targetError{cerr}
	}
	return err
}

// targetWriter marks its writer's errors as the target's.
type targetWriter struct{ w io.Writer }

func (t targetWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	if err != nil {
		err = &targetError{err}
	}
	return n, err
}

// thinExtent is a flat extent being written, counting the data.
type thinExtent struct {
	*os.File
	written *atomic.Int64
}

func (t thinExtent) WriteAt(b []byte, off int64) (int, error) {
	n, err := t.File.WriteAt(b, off)
	t.written.Add(int64(n))
	return n, err
}

// writeThinDisk decodes a streamOptimized VMDK into the disk whose
// descriptor is at local: its flat extent first (from scratch, sparse),
// then the descriptor (writeThinDescriptor).
func writeThinDisk(local, adapter string, src io.Reader, written *atomic.Int64) (streamReadStats, error) {
	desc, flat := diskDescriptor(local)
	out, err := os.OpenFile(filepath.Join(filepath.Dir(local), flat), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return streamReadStats{}, &targetError{err}
	}
	stats, err := readStreamOptimized(src, thinExtent{File: out, written: written})
	if cerr := out.Close(); err == nil && cerr != nil {
		err = &targetError{cerr}
	}
	if err != nil {
		return stats, err
	}

	return stats, writeThinDescriptor(local, desc, flat, adapter, stats)
}

// writeThinDescriptor writes the descriptor at local of a thin disk whose
// flat extent holds a decoded disk. It keeps what desc (as vcsim wrote it)
// says but the extent (VMFS, the decoded capacity), a new CID and no
// parent CID, says thin, and takes the decoded disk's ddb entries it lacks
// (hardware and tools versions, ...) but the adapter type and geometry,
// which follow adapter (the disk's controller).
func writeThinDescriptor(local string, desc *vmdk.Descriptor, flat, adapter string, stats streamReadStats) error {
	desc.Type = "vmfs"
	desc.CID = vmdk.DiskContentID(rand.Uint32())
	desc.ParentCID = 0xffffffff // a standalone disk: no parent
	desc.Extent = []vmdk.Extent{{Permission: "RW", Size: stats.Capacity / sectorSize, Type: "VMFS", Info: flat}}
	if stream, err := vmdk.ParseDescriptor(strings.NewReader(stats.Descriptor)); err == nil {
		for k, v := range stream.DDB {
			if _, ok := desc.DDB[k]; !ok {
				desc.DDB[k] = v
			}
		}
	}
	heads := uint64(255)
	if adapter == "ide" {
		heads = 16
	}
	desc.DDB["adapterType"] = adapter
	desc.DDB["geometry.heads"] = strconv.FormatUint(heads, 10)
	desc.DDB["geometry.sectors"] = "63"
	desc.DDB["geometry.cylinders"] = strconv.FormatUint(min(max(uint64(stats.Capacity)/sectorSize/(heads*63), 1), 65535), 10)
	desc.DDB["thinProvisioned"] = "1"
	tmp := local + ".vcsim-import"
	f, err := os.Create(tmp)
	if err != nil {
		return &targetError{err}
	}
	err = desc.Write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, local)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return &targetError{err}
	}
	return nil
}

// diskDescriptor is the disk's descriptor as vcsim wrote it (a new one if
// it is missing) and the file name of its flat extent.
func diskDescriptor(local string) (*vmdk.Descriptor, string) {
	desc := vmdk.NewDescriptor()
	if f, err := os.Open(local); err == nil {
		if d, err := vmdk.ParseDescriptor(io.LimitReader(f, 1<<20)); err == nil {
			desc = d
		}
		_ = f.Close()
	}
	for _, e := range desc.Extent {
		if (e.Type == "VMFS" || e.Type == "FLAT") && e.Info != "" && e.Info == filepath.Base(e.Info) {
			return desc, e.Info
		}
	}
	return desc, simulator.VirtualDiskBackingFileName(filepath.Base(local))
}

// importRow is an import lease in GET /vcdriver/nfc (nfc_stats.go).
type importRow struct {
	Lease         string          `json:"lease"`
	Kind          string          `json:"kind"`
	Entity        string          `json:"entity"`
	State         string          `json:"state"`
	Error         string          `json:"error,omitempty"`
	Bytes         int64           `json:"bytes"` // received + pulled
	BytesReceived int64           `json:"bytes_received"`
	BytesPulled   int64           `json:"bytes_pulled"`
	BytesWritten  int64           `json:"bytes_written"`
	Files         []importFileRow `json:"files"`
}

type importFileRow struct {
	Name          string `json:"name"` // the device URL's last path element
	Key           string `json:"key"`
	ImportKey     string `json:"import_key"`
	File          string `json:"file"` // datastore path
	Disk          bool   `json:"disk"`
	State         string `json:"state"` // waiting, transferring, done, error
	Error         string `json:"error,omitempty"`
	Transfers     int    `json:"transfers"`   // that succeeded
	Capacity      int64  `json:"capacity"`    // bytes, of the last disk decoded
	Grains        int    `json:"grains"`      // grains in the last disk decoded
	ZeroGrains    int    `json:"zero_grains"` // of which all zeros
	BytesReceived int64  `json:"bytes_received"`
	BytesPulled   int64  `json:"bytes_pulled"`
	BytesWritten  int64  `json:"bytes_written"`
}

func (x *imports) statsRows() []nfcStatsRow {
	x.mu.Lock()
	leases := make([]*importLease, 0, len(x.leases))
	for _, l := range x.leases {
		leases = append(leases, l)
	}
	x.mu.Unlock()

	rows := make([]nfcStatsRow, 0, len(leases))
	for _, l := range leases {
		state, msg := x.sync(l)
		x.mu.Lock()
		row := importRow{Lease: l.ref.Value, Kind: "import", Entity: l.entity.Value, State: state, Error: msg, Files: []importFileRow{}}
		for _, f := range l.files {
			r := importFileRow{
				Name: f.name, Key: f.key, ImportKey: f.importKey, File: f.file, Disk: f.disk,
				State: f.state, Error: f.err, Transfers: f.done, Capacity: f.capacity,
				Grains: f.grains, ZeroGrains: f.zeros,
				BytesReceived: f.received.Load(), BytesPulled: f.pulled.Load(), BytesWritten: f.written.Load(),
			}
			row.BytesReceived += r.BytesReceived
			row.BytesPulled += r.BytesPulled
			row.BytesWritten += r.BytesWritten
			row.Files = append(row.Files, r)
		}
		x.mu.Unlock()
		row.Bytes = row.BytesReceived + row.BytesPulled
		rows = append(rows, nfcStatsRow{l.created, row})
	}
	return rows
}

func (x *imports) forgetFinished() {
	x.mu.Lock()
	var leases []*importLease
	for _, l := range x.leases {
		leases = append(leases, l)
	}
	x.mu.Unlock()
	for _, l := range leases {
		if state, _ := x.sync(l); finished(state) {
			x.mu.Lock()
			delete(x.leases, l.ref.Value)
			x.mu.Unlock()
		}
	}
}
