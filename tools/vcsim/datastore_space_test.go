package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const gib = int64(units.GB)

// spaceRequest sends a request to /vcdriver/datastores<path>.
func spaceRequest(t *testing.T, inst *instance, method, path, body string) (int, []byte) {
	t.Helper()
	u := inst.server.URL.Scheme + "://" + inst.server.URL.Host + datastoresPath + path
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// setSpace PUTs body for datastore name and returns the answered row.
func setSpace(t *testing.T, inst *instance, name, body string) datastoreRow {
	t.Helper()
	status, out := spaceRequest(t, inst, http.MethodPut, "/"+name, body)
	if status != http.StatusOK {
		t.Fatalf("PUT %s %s: %d %s", name, body, status, out)
	}
	var row datastoreRow
	if err := json.Unmarshal(out, &row); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return row
}

// listSpace is GET /vcdriver/datastores.
func listSpace(t *testing.T, inst *instance) []datastoreRow {
	t.Helper()
	status, out := spaceRequest(t, inst, http.MethodGet, "", "")
	var got struct{ Datastores []datastoreRow }
	if err := json.Unmarshal(out, &got); status != http.StatusOK || err != nil {
		t.Fatalf("GET: %d %s (%v)", status, out, err)
	}
	return got.Datastores
}

// datastoreRef is the reference of the datastore called name in DC0.
func datastoreRef(t *testing.T, c *govmomi.Client, name string) types.ManagedObjectReference {
	t.Helper()
	finder, _ := dcFinder(t, c)
	ds, err := finder.Datastore(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ds.Reference()
}

// datastoreProps is the datastore's summary and info, as a client reads them.
func datastoreProps(t *testing.T, c *govmomi.Client, ref types.ManagedObjectReference) mo.Datastore {
	t.Helper()
	var ds mo.Datastore
	if err := property.DefaultCollector(c.Client).RetrieveOne(context.Background(), ref, []string{"summary", "info"}, &ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestDatastoreSpaceIsSetAndRead: a PUT changes summary and info of the
// datastore named (NFS and VMFS alike), and no other; GET lists them.
func TestDatastoreSpaceIsSetAndRead(t *testing.T) {
	inst, c := startCluster(t, t.TempDir(), "-nfs", "2", "-cluster-datastores", "-datastore-capacity-gb", "100")

	row := setSpace(t, inst, "nfs1", `{"free_gb": 2.5}`)
	if row.Name != "nfs1" || row.Datacenter != "DC0" || row.Type != "NFS" ||
		row.FreeSpace != 5*gib/2 || row.Capacity != 100*gib || row.FreeGB != 2.5 || row.CapacityGB != 100 ||
		len(row.Changed) != 1 || row.Changed[0] != row.Moref {
		t.Fatalf("answer %+v", row)
	}
	nfs1 := datastoreProps(t, c, datastoreRef(t, c, "nfs1"))
	info := nfs1.Info.GetDatastoreInfo()
	if nfs1.Summary.FreeSpace != 5*gib/2 || nfs1.Summary.Capacity != 100*gib || info.FreeSpace != 5*gib/2 {
		t.Errorf("nfs1 summary %d/%d, info.freeSpace %d", nfs1.Summary.FreeSpace, nfs1.Summary.Capacity, info.FreeSpace)
	}
	if info.MaxFileSize != 100*gib || info.Timestamp == nil || time.Since(*info.Timestamp) > time.Minute {
		t.Errorf("nfs1 info.maxFileSize %d, timestamp %v", info.MaxFileSize, info.Timestamp)
	}
	if nas, ok := nfs1.Info.(*types.NasDatastoreInfo); !ok || nas.Nas == nil || nas.Nas.RemotePath != "/exports/nfs1" {
		t.Errorf("nfs1 info is %#v, want its NasDatastoreInfo kept", nfs1.Info)
	}
	if nfs0 := datastoreProps(t, c, datastoreRef(t, c, "nfs0")); nfs0.Summary.FreeSpace != 100*gib {
		t.Errorf("nfs0 changed too: free %d", nfs0.Summary.FreeSpace)
	}

	// A new capacity, on a VMFS datastore.
	row = setSpace(t, inst, "ds-DC0_C1", `{"free_gb": 10, "capacity_gb": 50}`)
	if row.Type != "VMFS" || row.FreeSpace != 10*gib || row.Capacity != 50*gib {
		t.Fatalf("answer %+v", row)
	}
	vmfs := datastoreProps(t, c, datastoreRef(t, c, "ds-DC0_C1"))
	vi, ok := vmfs.Info.(*types.VmfsDatastoreInfo)
	if !ok || vi.Vmfs == nil {
		t.Fatalf("ds-DC0_C1 info is %#v", vmfs.Info)
	}
	if vmfs.Summary.Capacity != 50*gib || vmfs.Summary.FreeSpace != 10*gib || vi.FreeSpace != 10*gib ||
		vi.MaxFileSize != 50*gib || vi.MaxMemoryFileSize != 50*gib || vi.MaxVirtualRDMFileSize != 50*gib ||
		vi.Vmfs.Capacity != 50*gib || vi.Vmfs.Name != "ds-DC0_C1" {
		t.Errorf("ds-DC0_C1: summary %d/%d, info %+v, vmfs %+v", vmfs.Summary.FreeSpace, vmfs.Summary.Capacity, vi.DatastoreInfo, vi.Vmfs)
	}
	// The other cluster's VMFS volume kept its own (no shared HostVmfsVolume).
	other := datastoreProps(t, c, datastoreRef(t, c, "ds-DC0_C0")).Info.(*types.VmfsDatastoreInfo)
	if other.Vmfs.Capacity != 100*gib || other.FreeSpace != 100*gib {
		t.Errorf("ds-DC0_C0 changed too: %+v", other.Vmfs)
	}

	got := map[string][2]float64{}
	for _, r := range listSpace(t, inst) {
		got[r.Name] = [2]float64{r.FreeGB, r.CapacityGB}
	}
	want := map[string][2]float64{"nfs0": {100, 100}, "nfs1": {2.5, 100}, "ds-DC0_C0": {100, 100}, "ds-DC0_C1": {10, 50}}
	if len(got) != len(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("listed %s as %v, want %v", name, got[name], w)
		}
	}
	status, out := spaceRequest(t, inst, http.MethodGet, "/nfs1", "")
	if status != http.StatusOK || !strings.Contains(string(out), `"free_gb":2.5`) {
		t.Errorf("GET nfs1: %d %s", status, out)
	}
}

// waitFirst starts a collector with one filter on path of ref, reads the
// current values, then waits (up to maxWait seconds) for the next update
// in the background: the channel gets its changes to path (nil: none).
func waitFirst(t *testing.T, c *govmomi.Client, ref types.ManagedObjectReference, path string, maxWait int32) <-chan []types.PropertyChange {
	t.Helper()
	ctx := context.Background()
	pc, err := property.DefaultCollector(c.Client).Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Destroy(context.Background()) })
	_, err = pc.CreateFilter(ctx, types.CreateFilter{Spec: types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{Obj: ref}},
		PropSet:   []types.PropertySpec{{Type: "Datastore", PathSet: []string{path}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := methods.WaitForUpdatesEx(ctx, c.Client, &types.WaitForUpdatesEx{This: pc.Reference(), Version: ""})
	if err != nil || first.Returnval == nil {
		t.Fatalf("%s: first WaitForUpdatesEx: %v", path, err)
	}
	version := first.Returnval.Version
	out := make(chan []types.PropertyChange, 1)
	go func() {
		res, err := methods.WaitForUpdatesEx(ctx, c.Client, &types.WaitForUpdatesEx{
			This: pc.Reference(), Version: version,
			Options: &types.WaitOptions{MaxWaitSeconds: &maxWait},
		})
		var changes []types.PropertyChange
		if err == nil && res.Returnval != nil {
			for _, fs := range res.Returnval.FilterSet {
				for _, o := range fs.ObjectSet {
					for _, ch := range o.ChangeSet {
						if ch.Name == path {
							changes = append(changes, ch)
						}
					}
				}
			}
		}
		out <- changes
	}()
	return out
}

// freeSpaceIn is the free space a change to path carries.
func freeSpaceIn(val any) int64 {
	switch v := val.(type) {
	case types.DatastoreSummary:
		return v.FreeSpace
	case types.BaseDatastoreInfo:
		return v.GetDatastoreInfo().FreeSpace
	case int64:
		return v
	}
	// An info arrives as a value (types.NasDatastoreInfo, ...).
	p := reflect.New(reflect.TypeOf(val))
	p.Elem().Set(reflect.ValueOf(val))
	if info, ok := p.Interface().(types.BaseDatastoreInfo); ok {
		return info.GetDatastoreInfo().FreeSpace
	}
	return -1
}

// TestDatastoreSpaceWakesWaitForUpdates: a WaitForUpdatesEx waiting on
// the datastore's summary, info or one of their space fields when the PUT
// comes returns the new values; one on another datastore keeps waiting.
func TestDatastoreSpaceWakesWaitForUpdates(t *testing.T) {
	inst, c := startCluster(t, t.TempDir(), "-nfs", "2", "-datastore-capacity-gb", "100")
	nfs0, nfs1 := datastoreRef(t, c, "nfs0"), datastoreRef(t, c, "nfs1")

	want := map[string]int64{ // path -> the value its change carries
		"summary":           7 * gib,
		"summary.freeSpace": 7 * gib,
		"summary.capacity":  90 * gib,
		"info":              7 * gib,
		"info.freeSpace":    7 * gib,
		"info.maxFileSize":  90 * gib,
	}
	waits := map[string]<-chan []types.PropertyChange{}
	for path := range want {
		waits[path] = waitFirst(t, c, nfs0, path, 20)
	}
	elsewhere := waitFirst(t, c, nfs1, "summary", 2)
	time.Sleep(300 * time.Millisecond) // the waits are waiting

	start := time.Now()
	setSpace(t, inst, "nfs0", `{"free_gb": 7, "capacity_gb": 90}`)
	for path, w := range want {
		changes := <-waits[path]
		if len(changes) == 0 {
			t.Errorf("%s: the wait ended without a change", path)
			continue
		}
		last := changes[len(changes)-1]
		got := freeSpaceIn(last.Val)
		if path == "summary.capacity" || path == "info.maxFileSize" {
			got, _ = last.Val.(int64)
		}
		if got != w {
			t.Errorf("%s: changed to %#v, want %d", path, last.Val, w)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the waits took %v to wake", took)
	}
	if changes := <-elsewhere; len(changes) != 0 {
		t.Errorf("a wait on nfs1 woke with %v", changes)
	}
}

// TestDatastoreSpaceErrors: unknown datastores, impossible or malformed
// values and other methods are refused, and change nothing.
func TestDatastoreSpaceErrors(t *testing.T) {
	inst, c := startCluster(t, t.TempDir(), "-datastore-capacity-gb", "100")

	for _, tc := range []struct {
		method, path, body string
		status             int
		says               string
	}{
		{http.MethodPut, "/nope", `{"free_gb": 1}`, http.StatusNotFound, `no datastore "nope" (datastores: nfs0)`},
		{http.MethodGet, "/nope", ``, http.StatusNotFound, `no datastore "nope"`},
		{http.MethodPut, "/nfs0?datacenter=DC9", `{"free_gb": 1}`, http.StatusNotFound, `in datacenter DC9`},
		{http.MethodPut, "/nfs0", `{"free_gb": 101}`, http.StatusBadRequest, "more than the capacity of nfs0 (100 GiB)"},
		{http.MethodPut, "/nfs0", `{"free_gb": 60, "capacity_gb": 50}`, http.StatusBadRequest, "more than the capacity of nfs0 (50 GiB)"},
		{http.MethodPut, "/nfs0", `{"free_gb": -1}`, http.StatusBadRequest, "negative"},
		{http.MethodPut, "/nfs0", `{"free_gb": 1, "capacity_gb": 0}`, http.StatusBadRequest, "not positive"},
		{http.MethodPut, "/nfs0", `{"capacity_gb": 50}`, http.StatusBadRequest, `want {"free_gb": N}`},
		{http.MethodPut, "/nfs0", `{"free": 1}`, http.StatusBadRequest, `unknown field "free"`},
		{http.MethodPut, "/nfs0", `nope`, http.StatusBadRequest, `want {"free_gb": N}`},
		{http.MethodPost, "/nfs0", `{"free_gb": 1}`, http.StatusMethodNotAllowed, ""},
		{http.MethodDelete, "", ``, http.StatusMethodNotAllowed, ""},
	} {
		status, out := spaceRequest(t, inst, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tc.method, tc.path, tc.body, status, out, tc.status, tc.says)
		}
	}
	ds := datastoreProps(t, c, datastoreRef(t, c, "nfs0"))
	if ds.Summary.FreeSpace != 100*gib || ds.Summary.Capacity != 100*gib || ds.Info.GetDatastoreInfo().FreeSpace != 100*gib {
		t.Errorf("refused requests changed nfs0: %+v", ds.Summary)
	}
}

// TestDatastoreSpaceInEveryDatacenter: an NFS datastore's name has one
// object per datacenter; a PUT changes all, or the one ?datacenter= names.
func TestDatastoreSpaceInEveryDatacenter(t *testing.T) {
	inst, _ := startCluster(t, t.TempDir(), "-datacenters", "2", "-datastore-capacity-gb", "100")

	row := setSpace(t, inst, "nfs0", `{"free_gb": 30}`)
	if len(row.Changed) != 2 || row.Datacenter != "DC0" {
		t.Fatalf("answer %+v, want both objects changed", row)
	}
	row = setSpace(t, inst, "nfs0?datacenter=DC1", `{"free_gb": 20}`)
	if len(row.Changed) != 1 || row.Datacenter != "DC1" || row.FreeGB != 20 {
		t.Fatalf("answer %+v, want DC1's only", row)
	}
	got := map[string]float64{}
	for _, r := range listSpace(t, inst) {
		got[r.Datacenter+"/"+r.Name] = r.FreeGB
	}
	if len(got) != 2 || got["DC0/nfs0"] != 30 || got["DC1/nfs0"] != 20 {
		t.Errorf("listed %v", got)
	}
}
