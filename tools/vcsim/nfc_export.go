package main

// Export leases (ExportVm, VirtualMachineSnapshot.ExportSnapshot) whose
// disk device URLs serve the disk's content as a streamOptimized VMDK, as
// ESX does.
//
// What vcsim lacks, and what is simulated here:
//   - ExportVm is missing from vcsim. It is added, refusing a VM that is
//     not powered off with InvalidPowerState, as vCenter does.
//   - vcsim's ExportSnapshot lease serves a disk URL as the raw backing
//     file, i.e. the text descriptor. Both calls here make a lease whose
//     disk URLs stream the disk as streamOptimized, generated on the fly
//     (stream_optimized.go) from the flat extent(s) the descriptor names;
//     a missing or short extent reads as zeros up to the disk's capacity.
//     The disk of a linked clone (a delta with parents) reads through to its
//     parents where its own extent holds zeros (openChain, linked_clones.go). Other file-backed devices
//     are served as their files.
//   - A lease whose disk descriptor does not exist goes to state error with
//     FileNotFound, as vCenter's does, instead of failing later on GET.
//   - GET /vcdriver/nfc (nfc_stats.go) lists the leases made here with
//     their outcome (ready, error, completed, aborted) and the bytes served,
//     so tests can check that a client completed or aborted its lease.
//
// The calls are routed here by the Registry's method Handler hook (see
// exportService; no SOAP rewriting); the leases are vcsim's own HttpNfcLease objects in the
// caller's session, so HttpNfcLeaseProgress, Complete and Abort, and the
// PropertyCollector, work on them unchanged. The lease URL paths are the
// ones vcsim uses (/nfc/<lease>/<file name>); URLs of other leases fall
// through (ImportVApp's to nfc_import.go).

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const nfcPathPrefix = "/nfc/"

// exports keeps the leases made by ExportVm and ExportSnapshot.
type exports struct {
	server *url.URL // the lease URLs' scheme and host

	mu     sync.Mutex
	leases map[string]*exportLease // lease moref value -> lease
}

type exportLease struct {
	ref     types.ManagedObjectReference
	session *simulator.Registry // holds the lease until Complete/Abort
	entity  types.ManagedObjectReference
	targets map[string]*exportTarget // URL file name -> target
	created time.Time

	// Guarded by exports.mu.
	state string // ready, error, completed, aborted
	err   string
	bytes int64
}

type exportTarget struct {
	file     string   // datastore path, "[ds] dir/name.vmdk"
	local    string   // its path on this machine
	parents  []string // disks only: local descriptors of a delta's parents
	disk     bool
	capacity int64  // disks only, bytes
	adapter  string // disks only, for the descriptor's ddb.adapterType
}

func newExports(server *url.URL) *exports {
	u := *server
	u.User = nil
	return &exports{server: &u, leases: map[string]*exportLease{}}
}

// exportService answers ExportVm and ExportSnapshot. The Registry's method
// Handler hook cannot hand these calls to another object (the session's
// lookup of the call's target, which falls back to the global Map, has the
// last word), so the hook points the call at this object instead; the
// request body still names the VM or snapshot.
//
// Every object in the Map needs an embedded mo type first (searches such as
// FindByUuid look into all of them).
type exportService struct {
	mo.ExtensibleManagedObject
	x *exports
}

var exportServiceRef = types.ManagedObjectReference{Type: "VcdriverExportService", Value: "vcdriver-exports"}

// install routes the export methods here; it must run before serving.
func (x *exports) install(m *simulator.Model) {
	service := &exportService{x: x}
	service.Self = exportServiceRef
	m.Map().Put(service)
	routeMethods(m, x.route)
}

// route sends the export calls to the exportService and notes the end of
// our leases.
func (x *exports) route(ctx *simulator.Context, method *simulator.Method) {
	switch method.Name {
	case "ExportVm":
		if _, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine); ok {
			method.This = exportServiceRef
		}
	case "ExportSnapshot":
		if _, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachineSnapshot); ok {
			method.This = exportServiceRef
		}
	case "HttpNfcLeaseComplete":
		x.finish(method.This, "completed")
	case "HttpNfcLeaseAbort":
		x.finish(method.This, "aborted")
	}
}

func (x *exports) finish(ref types.ManagedObjectReference, state string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if l, ok := x.leases[ref.Value]; ok && (l.state == "ready" || l.state == "error") {
		l.state = state
	}
}

// ExportVm exports a powered-off VM's disks as they are.
func (s *exportService) ExportVm(ctx *simulator.Context, req *types.ExportVm) soap.HasFault {
	body := new(methods.ExportVmBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	var state types.VirtualMachinePowerState
	var devices []types.BaseVirtualDevice
	ctx.WithLock(vm, func() {
		state = vm.Runtime.PowerState
		devices = object.VirtualDeviceList(vm.Config.Hardware.Device)
	})
	if state != types.VirtualMachinePowerStatePoweredOff {
		body.Fault_ = simulator.Fault("", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  state,
		})
		return body
	}
	body.Res = &types.ExportVmResponse{Returnval: s.x.newLease(ctx, vm.Self, devices)}
	return body
}

// ExportSnapshot exports the disks as they were when the snapshot was
// taken, whatever the VM's power state.
func (s *exportService) ExportSnapshot(ctx *simulator.Context, req *types.ExportSnapshot) soap.HasFault {
	body := new(methods.ExportSnapshotBody)
	snapshot, fault := lookup[*simulator.VirtualMachineSnapshot](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	var vm types.ManagedObjectReference
	var devices []types.BaseVirtualDevice
	ctx.WithLock(snapshot, func() {
		vm = snapshot.Vm
		devices = object.VirtualDeviceList(snapshot.Config.Hardware.Device)
	})
	body.Res = &types.ExportSnapshotResponse{Returnval: s.x.newLease(ctx, vm, devices)}
	return body
}

// newLease makes a lease in the caller's session over the file-backed
// devices, ready, or in state error if a disk's descriptor is missing.
func (x *exports) newLease(ctx *simulator.Context, vm types.ManagedObjectReference, devices []types.BaseVirtualDevice) types.ManagedObjectReference {
	lease := &simulator.HttpNfcLease{HttpNfcLease: mo.HttpNfcLease{
		InitializeProgress: 100,
		Mode:               string(types.HttpNfcLeaseModePushOrGet),
		Capabilities: types.HttpNfcLeaseCapabilities{
			CorsSupported:     true,
			PullModeSupported: true,
		},
	}}
	ctx.Session.Put(lease)
	record := &exportLease{
		ref:     lease.Self,
		session: ctx.Session.Registry,
		entity:  vm,
		targets: map[string]*exportTarget{},
		created: time.Now(),
		state:   "ready",
	}

	list := object.VirtualDeviceList(devices)
	counts := map[string]int{}
	var urls []types.HttpNfcLeaseDeviceUrl
	var totalKB int64
	var fault *types.LocalizedMethodFault
	for _, d := range devices {
		backing, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		var p object.DatastorePath
		if !p.FromString(backing.GetVirtualDeviceFileBackingInfo().FileName) {
			continue
		}
		name := path.Base(p.Path)
		kind := list.Type(d)
		n := counts[kind]
		counts[kind]++
		t := &exportTarget{file: p.String(), local: datastoreFile(ctx, p)}
		if disk, ok := d.(*types.VirtualDisk); ok {
			t.disk = true
			t.capacity = disk.CapacityInBytes
			if t.capacity == 0 {
				t.capacity = disk.CapacityInKB * 1024
			}
			totalKB += t.capacity / 1024
			t.adapter = adapterType(list.FindByKey(disk.ControllerKey))
			if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				for parent := b.Parent; parent != nil; parent = parent.Parent {
					var pp object.DatastorePath
					if pp.FromString(parent.FileName) {
						t.parents = append(t.parents, datastoreFile(ctx, pp))
					}
				}
			}
			if _, err := os.Stat(t.local); err != nil && fault == nil {
				fault = &types.LocalizedMethodFault{
					Fault:            &types.FileNotFound{FileFault: types.FileFault{File: t.file}},
					LocalizedMessage: fmt.Sprintf("File %s was not found", t.file),
				}
			}
		}
		record.targets[name] = t
		u := *x.server
		u.Path = nfcPathPrefix + path.Join(lease.Self.Value, name)
		urls = append(urls, types.HttpNfcLeaseDeviceUrl{
			Key:       fmt.Sprintf("/%s/%s:%d", vm.Value, kind, n),
			ImportKey: fmt.Sprintf("/%s/%s:%d", vm.Value, kind, n),
			Url:       u.String(),
			Disk:      types.NewBool(t.disk),
			TargetId:  name,
		})
	}

	// Nobody holds the lease's reference yet: set its state directly.
	if fault != nil {
		lease.State = types.HttpNfcLeaseStateError
		lease.Error = fault
		record.state, record.err = "error", fault.LocalizedMessage
	} else {
		lease.State = types.HttpNfcLeaseStateReady
		lease.Info = &types.HttpNfcLeaseInfo{
			Lease:                 lease.Self,
			Entity:                vm,
			DeviceUrl:             urls,
			TotalDiskCapacityInKB: totalKB,
			LeaseTimeout:          300,
		}
	}
	x.mu.Lock()
	x.leases[lease.Self.Value] = record
	x.mu.Unlock()
	return lease.Self
}

// datastoreFile is the local path of a datastore path ("" if the datastore
// is unknown). Datastores of the same name in several datacenters share
// their directory here (datastores.go), so any of them will do.
func datastoreFile(ctx *simulator.Context, p object.DatastorePath) string {
	for _, e := range ctx.Map.All("Datastore") {
		ds, ok := e.(*simulator.Datastore)
		if !ok || ds.Name != p.Datastore {
			continue
		}
		dir := ds.Summary.Url
		if dir == "" {
			dir = ds.Info.GetDatastoreInfo().Url
		}
		return filepath.Join(dir, filepath.FromSlash(p.Path))
	}
	return ""
}

// adapterType names a disk's controller as a VMDK descriptor does.
func adapterType(controller types.BaseVirtualDevice) string {
	switch controller.(type) {
	case *types.VirtualIDEController:
		return "ide"
	case *types.VirtualBusLogicController:
		return "buslogic"
	default:
		return "lsilogic"
	}
}

func (x *exports) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, nfcPathPrefix) && x.serveNFC(w, r):
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// serveNFC serves a device URL of one of our leases; false if the URL is
// not one of theirs.
func (x *exports) serveNFC(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPathPrefix), "/")
	if len(parts) != 2 {
		return false
	}
	x.mu.Lock()
	lease, ok := x.leases[parts[0]]
	state := ""
	if ok {
		state = lease.state
	}
	x.mu.Unlock()
	if !ok {
		return false
	}
	// Like vCenter, a completed or aborted lease (gone from the session)
	// serves nothing any more; nor does one in state error.
	if lease.session.Get(lease.ref) == nil || state != "ready" {
		http.Error(w, "lease is no longer valid", http.StatusNotFound)
		return true
	}
	target, ok := lease.targets[parts[1]]
	if !ok {
		http.Error(w, "no such device in the lease", http.StatusNotFound)
		return true
	}
	if r.Method != http.MethodGet {
		http.Error(w, "export leases are read with GET", http.StatusMethodNotAllowed)
		return true
	}
	count := &countingWriter{w: w}
	var err error
	if target.disk {
		err = serveDisk(count, w, target)
	} else {
		err = serveFile(count, w, target)
	}
	x.mu.Lock()
	lease.bytes += count.n
	x.mu.Unlock()
	if err != nil {
		log.Printf("nfc GET %s (%s): %v", r.URL.Path, target.file, err)
		if count.n > 0 {
			// Headers went out: cut the connection so that the client sees
			// a broken stream, not a short one that ends cleanly.
			panic(http.ErrAbortHandler)
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	return true
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// serveDisk streams the disk, read through its chain (openChain,
// linked_clones.go), as a streamOptimized VMDK of its capacity. Errors
// before the first byte leave the response to the caller.
func serveDisk(out io.Writer, w http.ResponseWriter, t *exportTarget) error {
	src, capacity, done, err := openChain(append([]string{t.local}, t.parents...), t.capacity)
	if err != nil {
		return err
	}
	defer done()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, err = writeStreamOptimized(out, src, capacity, t.adapter)
	return err
}

func serveFile(out io.Writer, w http.ResponseWriter, t *exportTarget) error {
	f, err := os.Open(t.local)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(out, f)
	return err
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

type flatExtent struct {
	file string
	size int64 // bytes
}

var extentRE = regexp.MustCompile(`^(?:RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?`)

// flatExtents reads a disk descriptor: its extents (which must be flat:
// FLAT, VMFS or ZERO, at offset 0) and its capacity in bytes.
func flatExtents(descriptor string) ([]flatExtent, int64, error) {
	f, err := os.Open(descriptor)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err == nil && string(head) == "KDMV" {
		return nil, 0, fmt.Errorf("%s is a hosted sparse disk, not a descriptor of flat extents", descriptor)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	var extents []flatExtent
	var capacity int64
	scanner := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for scanner.Scan() {
		m := extentRE.FindStringSubmatch(strings.TrimSpace(scanner.Text()))
		if m == nil {
			continue
		}
		sectors, _ := strconv.ParseInt(m[1], 10, 64)
		size := sectors * sectorSize
		capacity += size
		switch kind := strings.ToUpper(m[2]); {
		case kind == "ZERO":
			extents = append(extents, flatExtent{size: size})
		case (kind == "FLAT" || kind == "VMFS") && m[3] != "" && (m[4] == "" || m[4] == "0"):
			extents = append(extents, flatExtent{file: filepath.Join(filepath.Dir(descriptor), m[3]), size: size})
		default:
			return nil, 0, fmt.Errorf("%s: extent %q is not a flat extent at offset 0", descriptor, m[0])
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, 0, err
	}
	if len(extents) == 0 {
		return nil, 0, fmt.Errorf("%s names no extent", descriptor)
	}
	// vcsim's VirtualDiskManager moves and copies a disk as the pair
	// <name>.vmdk, <name>-flat.vmdk without rewriting the descriptor, which
	// then names the extent of the disk it came from (gone after a move,
	// another disk's after a copy): a one-extent disk's own
	// <name>-flat.vmdk, where there is one, is its extent.
	if len(extents) == 1 && extents[0].file != "" {
		own := filepath.Join(filepath.Dir(descriptor), simulator.VirtualDiskBackingFileName(filepath.Base(descriptor)))
		if own != extents[0].file && own != filepath.Clean(descriptor) {
			if _, err := os.Stat(own); err == nil {
				extents[0].file = own
			}
		}
	}
	return extents, capacity, nil
}

// statsRows lists the export leases for GET /vcdriver/nfc (nfc_stats.go):
//
//	{"lease", "kind": "export", "entity", "state", "error", "bytes"}
func (x *exports) statsRows() []nfcStatsRow {
	type row struct {
		Lease  string `json:"lease"`
		Kind   string `json:"kind"`
		Entity string `json:"entity"`
		State  string `json:"state"`
		Error  string `json:"error,omitempty"`
		Bytes  int64  `json:"bytes"`
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	rows := make([]nfcStatsRow, 0, len(x.leases))
	for _, l := range x.leases {
		rows = append(rows, nfcStatsRow{l.created, row{l.ref.Value, "export", l.entity.Value, l.state, l.err, l.bytes}})
	}
	return rows
}

func (x *exports) forgetFinished() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, l := range x.leases {
		if finished(l.state) {
			delete(x.leases, id)
		}
	}
}
