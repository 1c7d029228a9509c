package main

// Datastore capacity and free space, changed while the simulator runs.
//
//	GET /vcdriver/datastores         {"datastores": [row, ...]}, every
//	                                 datastore object, by datacenter, name
//	GET /vcdriver/datastores/<name>  the row of that datastore
//	PUT /vcdriver/datastores/<name>  {"free_gb": N} or {"free_gb": N,
//	                                 "capacity_gb": M} (GiB, fractions
//	                                 allowed): 200 and its new row
//
// A row is {"name", "moref", "datacenter", "type", "accessible", "url",
// "capacity", "free_space" (bytes: summary.capacity, summary.freeSpace),
// "capacity_gb", "free_gb" (the same in GiB)}. An unknown name is a 404, a
// free space above the capacity (or a negative one, or a capacity that is
// not positive) a 400, nothing changed.
//
// With several datacenters each has its own object of an NFS datastore's
// name (datastores.go): a PUT changes all of them, as the one export they
// are, unless ?datacenter=<name> picks one; it answers the first one's row
// and lists every object it changed in "changed".
//
// The change is announced, as vCenter announces one, to every
// PropertyCollector filter that watches summary, summary.capacity,
// summary.freeSpace, info, info.freeSpace, info.maxFileSize,
// info.maxMemoryFileSize or info.timestamp of the datastore: a
// WaitForUpdatesEx waiting on any of them wakes with the new values. A
// new capacity also becomes info.maxFileSize and info.maxMemoryFileSize
// (and a VMFS datastore's maximum RDM sizes and vmfs.capacity), as
// -datastore-capacity-gb and vcsim's RefreshDatastore set them.
//
// vcsim itself still changes summary.freeSpace silently: it takes a new
// disk's capacity off it and gives a removed one's back without telling
// any collector (RetrieveProperties sees it, WaitForUpdatesEx does not),
// and its RefreshDatastore resets capacity and free space to 1 TiB per
// host, also silently.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const datastoresPath = "/vcdriver/datastores"

// datastoreRow is a datastore as listed and as answered.
type datastoreRow struct {
	Name       string   `json:"name"`
	Moref      string   `json:"moref"`
	Datacenter string   `json:"datacenter"`
	Type       string   `json:"type"`
	Accessible bool     `json:"accessible"`
	URL        string   `json:"url"`
	Capacity   int64    `json:"capacity"`
	FreeSpace  int64    `json:"free_space"`
	CapacityGB float64  `json:"capacity_gb"`
	FreeGB     float64  `json:"free_gb"`
	Changed    []string `json:"changed,omitempty"` // PUT: every object changed
}

type datastoreSpace struct {
	m  *simulator.Model
	mu sync.Mutex // one change at a time
}

// datastoreControl serves /vcdriver/datastores (see above).
func datastoreControl(m *simulator.Model) middleware {
	d := &datastoreSpace{m: m}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == datastoresPath || r.URL.Path == datastoresPath+"/":
				d.serveList(w, r)
			case strings.HasPrefix(r.URL.Path, datastoresPath+"/"):
				d.serveOne(w, r, strings.TrimPrefix(r.URL.Path, datastoresPath+"/"))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// ctx is the context control requests lock objects and announce changes
// on behalf of (no session: none is needed to notify collectors).
func (d *datastoreSpace) ctx() *simulator.Context {
	return &simulator.Context{Map: d.m.Map(), Context: context.Background()}
}

// datastores are every datastore object with its datacenter's name, by
// datacenter then name.
func (d *datastoreSpace) datastores() ([]*simulator.Datastore, map[types.ManagedObjectReference]string) {
	r := d.m.Map()
	var all []*simulator.Datastore
	dcs := map[types.ManagedObjectReference]string{}
	for _, e := range r.All("Datastore") {
		ds := e.(*simulator.Datastore)
		all = append(all, ds)
		dcs[ds.Self] = datacenterOf(r, ds.Parent)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if dcs[a.Self] != dcs[b.Self] {
			return dcs[a.Self] < dcs[b.Self]
		}
		return a.Name < b.Name
	})
	return all, dcs
}

// datacenterOf is the name of the datacenter above parent ("" if none).
func datacenterOf(r *simulator.Registry, parent *types.ManagedObjectReference) string {
	for parent != nil {
		switch e := r.Get(*parent).(type) {
		case *simulator.Datacenter:
			return e.Name
		case mo.Entity:
			parent = e.Entity().Parent
		default:
			return ""
		}
	}
	return ""
}

// row reads a datastore's row under its lock.
func (d *datastoreSpace) row(ctx *simulator.Context, ds *simulator.Datastore, dc string) datastoreRow {
	var row datastoreRow
	ctx.WithLock(ds, func() {
		s := ds.Summary
		row = datastoreRow{
			Name: ds.Name, Moref: ds.Self.Value, Datacenter: dc,
			Type: s.Type, Accessible: s.Accessible, URL: s.Url,
			Capacity: s.Capacity, FreeSpace: s.FreeSpace,
			CapacityGB: float64(s.Capacity) / float64(units.GB),
			FreeGB:     float64(s.FreeSpace) / float64(units.GB),
		}
	})
	return row
}

func (d *datastoreSpace) serveList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	ctx := d.ctx()
	all, dcs := d.datastores()
	rows := []datastoreRow{}
	for _, ds := range all {
		rows = append(rows, d.row(ctx, ds, dcs[ds.Self]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"datastores": rows})
}

// named are the datastores called name (in datacenter dc if given); an
// error message for a 404 if there is none.
func (d *datastoreSpace) named(name, dc string) ([]*simulator.Datastore, map[types.ManagedObjectReference]string, string) {
	all, dcs := d.datastores()
	var found []*simulator.Datastore
	known := map[string]bool{}
	for _, ds := range all {
		known[ds.Name] = true
		if ds.Name == name && (dc == "" || dcs[ds.Self] == dc) {
			found = append(found, ds)
		}
	}
	if len(found) != 0 {
		return found, dcs, ""
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	where := ""
	if dc != "" {
		where = " in datacenter " + dc
	}
	return nil, nil, fmt.Sprintf("no datastore %q%s (datastores: %s)", name, where, strings.Join(names, ", "))
}

func (d *datastoreSpace) serveOne(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found, dcs, missing := d.named(name, r.URL.Query().Get("datacenter"))
	if missing != "" {
		http.Error(w, missing, http.StatusNotFound)
		return
	}
	ctx := d.ctx()
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, d.row(ctx, found[0], dcs[found[0].Self]))
		return
	}

	var req struct {
		FreeGB     *float64 `json:"free_gb"`
		CapacityGB *float64 `json:"capacity_gb"`
	}
	if err := decodeJSONStrict(r, &req); err != nil || req.FreeGB == nil {
		msg := `want {"free_gb": N} or {"free_gb": N, "capacity_gb": M} (GiB)`
		if err != nil {
			msg += ": " + err.Error()
		}
		badRequest(w, msg)
		return
	}
	free := gibBytes(*req.FreeGB)
	if free < 0 || math.IsNaN(*req.FreeGB) {
		badRequest(w, fmt.Sprintf("free_gb %v is negative", *req.FreeGB))
		return
	}
	capacity := int64(-1) // each keeps its own
	if req.CapacityGB != nil {
		if capacity = gibBytes(*req.CapacityGB); capacity <= 0 {
			badRequest(w, fmt.Sprintf("capacity_gb %v is not positive", *req.CapacityGB))
			return
		}
	}
	for _, ds := range found {
		var have int64
		ctx.WithLock(ds, func() { have = ds.Summary.Capacity })
		if capacity >= 0 {
			have = capacity
		}
		if free > have {
			badRequest(w, fmt.Sprintf("free_gb %v is more than the capacity of %s (%v GiB)",
				*req.FreeGB, name, float64(have)/float64(units.GB)))
			return
		}
	}

	var changed []string
	for _, ds := range found {
		ctx.WithLock(ds, func() { setDatastoreSpace(ctx, ds, free, capacity) })
		changed = append(changed, ds.Self.Value)
	}
	row := d.row(ctx, found[0], dcs[found[0].Self])
	row.Changed = changed
	writeJSON(w, http.StatusOK, row)
}

// gibBytes is gb GiB in bytes.
func gibBytes(gb float64) int64 {
	return int64(math.Round(gb * float64(units.GB)))
}

// setDatastoreSpace gives ds free bytes free and, if capacity >= 0, that
// capacity, and announces the change. The caller holds ds's lock.
//
// The Registry's Update both sets and announces, but it cannot set a
// property below info: mo.ApplyPropertyChange resolves "info.freeSpace"
// against the base type DatastoreInfo and so indexes the fields of the
// concrete NasDatastoreInfo or VmfsDatastoreInfo wrongly (it panics). So
// the datastore's Update sets summary.* and the whole info, a copy with
// the new values; the info.* leaves are then announced through a stand-in
// of the datastore (same reference, no info), which Update can set
// harmlessly: collectors only take the reference from it, and read the
// real datastore for a filter on a parent ("info") of a change.
func setDatastoreSpace(ctx *simulator.Context, ds *simulator.Datastore, free, capacity int64) {
	if capacity < 0 {
		capacity = ds.Summary.Capacity
	}
	now := time.Now()
	info := copyDatastoreInfo(ds.Info)
	base := info.GetDatastoreInfo()
	base.FreeSpace = free
	base.Timestamp = &now
	leaves := []types.PropertyChange{
		{Name: "info.freeSpace", Val: free},
		{Name: "info.timestamp", Val: now},
	}
	if capacity != ds.Summary.Capacity {
		base.MaxFileSize = capacity
		base.MaxMemoryFileSize = capacity
		if vmfs, ok := info.(*types.VmfsDatastoreInfo); ok {
			vmfs.MaxPhysicalRDMFileSize = capacity
			vmfs.MaxVirtualRDMFileSize = capacity
			if vmfs.Vmfs != nil {
				volume := *vmfs.Vmfs
				volume.Capacity = capacity
				vmfs.Vmfs = &volume
			}
		}
		leaves = append(leaves,
			types.PropertyChange{Name: "info.maxFileSize", Val: capacity},
			types.PropertyChange{Name: "info.maxMemoryFileSize", Val: capacity})
	}

	ctx.Map.Update(ctx, ds, []types.PropertyChange{
		{Name: "summary.capacity", Val: capacity},
		{Name: "summary.freeSpace", Val: free},
		{Name: "info", Val: info},
	})
	standIn := &mo.Datastore{}
	standIn.Self = ds.Self
	ctx.Map.Update(ctx, standIn, leaves)
}

// copyDatastoreInfo is a copy of info, of its concrete type, so that a
// change made to it reaches the datastore only through Update.
func copyDatastoreInfo(info types.BaseDatastoreInfo) types.BaseDatastoreInfo {
	v := reflect.ValueOf(info)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return &types.DatastoreInfo{}
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface().(types.BaseDatastoreInfo)
}
