package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// startCluster starts a launcher of two clusters of two hosts and one NFS
// datastore over root, with extraFlags added, and logs a client in.
func startCluster(t *testing.T, root string, extraFlags ...string) (*instance, *govmomi.Client) {
	t.Helper()
	args := append([]string{"-clusters", "2", "-hosts-per-cluster", "2", "-nfs", "1", "-datastore-root", root}, extraFlags...)
	inst, err := start(parseFlags(flag.NewFlagSet("test", flag.ContinueOnError), args))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.stop)
	return inst, newTestClient(t, inst)
}

// dcFinder is a finder in DC0.
func dcFinder(t *testing.T, c *govmomi.Client) (*find.Finder, *object.Datacenter) {
	t.Helper()
	finder := find.NewFinder(c.Client, true)
	dc, err := finder.DefaultDatacenter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	finder.SetDatacenter(dc)
	return finder, dc
}

// refNames maps references to the names of their entities.
func refNames(t *testing.T, c *govmomi.Client, refs []types.ManagedObjectReference) []string {
	t.Helper()
	if len(refs) == 0 {
		return nil
	}
	var entities []mo.ManagedEntity
	if err := property.DefaultCollector(c.Client).Retrieve(context.Background(), refs, []string{"name"}, &entities); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entities {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return names
}

// TestClusterDatastoresAreSeenByTheirClusterOnly: with -cluster-datastores
// each cluster has nfs0 and a VMFS ds-<cluster> that its hosts mount and
// the other cluster's do not, and the start-up line names them.
func TestClusterDatastoresAreSeenByTheirClusterOnly(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inst, c := startCluster(t, root, "-cluster-datastores", "-datastore-capacity-gb", "3")

	wantByCluster := map[string]string{"DC0_C0": "ds-DC0_C0", "DC0_C1": "ds-DC0_C1"}
	if !reflect.DeepEqual(inst.info.ClusterDatastores, wantByCluster) {
		t.Fatalf("cluster_datastores is %v, want %v", inst.info.ClusterDatastores, wantByCluster)
	}
	for _, name := range []string{"nfs0", "ds-DC0_C0", "ds-DC0_C1"} {
		if dir := inst.info.Datastores[name]; dir != filepath.Join(root, name) {
			t.Errorf("datastores[%s] is %q, want %q", name, dir, filepath.Join(root, name))
		}
	}
	if len(inst.info.Datastores) != 3 {
		t.Errorf("datastores: %v", inst.info.Datastores)
	}

	pc := property.DefaultCollector(c.Client)
	finder, dc := dcFinder(t, c)
	clusters, err := finder.ClusterComputeResourceList(ctx, "*")
	if err != nil || len(clusters) != 2 {
		t.Fatalf("clusters: %v (%v)", clusters, err)
	}
	for _, cluster := range clusters {
		own := "ds-" + cluster.Name()
		var cr mo.ClusterComputeResource
		if err := pc.RetrieveOne(ctx, cluster.Reference(), []string{"host", "datastore"}, &cr); err != nil {
			t.Fatal(err)
		}
		if got, want := refNames(t, c, cr.Datastore), []string{own, "nfs0"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s.datastore is %v, want %v", cluster.Name(), got, want)
		}
		for _, h := range cr.Host {
			var host mo.HostSystem
			if err := pc.RetrieveOne(ctx, h, []string{"name", "datastore"}, &host); err != nil {
				t.Fatal(err)
			}
			if got, want := refNames(t, c, host.Datastore), []string{own, "nfs0"}; !reflect.DeepEqual(got, want) {
				t.Errorf("%s.datastore is %v, want %v", host.Name, got, want)
			}
		}

		ds, err := finder.Datastore(ctx, own)
		if err != nil {
			t.Fatal(err)
		}
		var props mo.Datastore
		if err := pc.RetrieveOne(ctx, ds.Reference(), []string{"summary", "info", "host"}, &props); err != nil {
			t.Fatal(err)
		}
		var mounts []types.ManagedObjectReference
		for _, m := range props.Host {
			mounts = append(mounts, m.Key)
			if mi := m.MountInfo; mi.Accessible == nil || !*mi.Accessible || mi.Mounted == nil || !*mi.Mounted {
				t.Errorf("%s mount on %s: %+v", own, m.Key, mi)
			}
		}
		if got, want := refNames(t, c, mounts), refNames(t, c, cr.Host); !reflect.DeepEqual(got, want) {
			t.Errorf("%s is mounted on %v, want its cluster's %v", own, got, want)
		}
		s := props.Summary
		capacity := 3 * int64(units.GB)
		if s.Type != "VMFS" || !s.Accessible || s.MultipleHostAccess == nil || !*s.MultipleHostAccess ||
			s.Capacity != capacity || s.FreeSpace != capacity || s.Url != filepath.Join(root, own) {
			t.Errorf("%s summary: %+v", own, s)
		}
		vmfs, ok := props.Info.(*types.VmfsDatastoreInfo)
		if !ok || vmfs.Vmfs == nil || vmfs.Vmfs.Type != "VMFS" || vmfs.Vmfs.Capacity != capacity ||
			vmfs.Url != s.Url || vmfs.Name != own || len(vmfs.Vmfs.Extent) != 1 {
			t.Errorf("%s info: %#v", own, props.Info)
		}
	}

	// The datacenter lists all three, in its datastore folder too.
	var dcProps mo.Datacenter
	if err := pc.RetrieveOne(ctx, dc.Reference(), []string{"datastore", "datastoreFolder"}, &dcProps); err != nil {
		t.Fatal(err)
	}
	var folder mo.Folder
	if err := pc.RetrieveOne(ctx, dcProps.DatastoreFolder, []string{"childEntity"}, &folder); err != nil {
		t.Fatal(err)
	}
	all := []string{"ds-DC0_C0", "ds-DC0_C1", "nfs0"}
	if got := refNames(t, c, dcProps.Datastore); !reflect.DeepEqual(got, all) {
		t.Errorf("datacenter datastore is %v, want %v", got, all)
	}
	if got := refNames(t, c, folder.ChildEntity); !reflect.DeepEqual(got, all) {
		t.Errorf("datastore folder holds %v, want %v", got, all)
	}

	// The start-up line carries the new key.
	line, err := json.Marshal(inst.info)
	if err != nil || !strings.Contains(string(line), `"cluster_datastores":{"DC0_C0":"ds-DC0_C0","DC0_C1":"ds-DC0_C1"}`) {
		t.Errorf("start-up line %s (%v)", line, err)
	}
}

// TestClusterDatastoreFilesAndRestart: a cluster's datastore serves files
// as nfs0 does (datastore HTTP, FileManager, VirtualDiskManager, the
// local paths NFC and sparse copies use), from its directory, which a
// restart over the same root keeps.
func TestClusterDatastoreFilesAndRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inst, c := startCluster(t, root, "-cluster-datastores")
	dir := filepath.Join(root, "ds-DC0_C1")
	data := []byte("a file on the cluster's LUN\n")

	finder, dc := dcFinder(t, c)
	ds, err := finder.Datastore(ctx, "ds-DC0_C1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Upload(ctx, bytes.NewReader(data), "up/file.txt", &soap.DefaultUpload); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "up", "file.txt")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("backing file holds %q (%v)", got, err)
	}
	download := func(ds *object.Datastore) []byte {
		t.Helper()
		r, _, err := ds.Download(ctx, "up/file.txt", &soap.DefaultDownload)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := download(ds); !bytes.Equal(got, data) {
		t.Fatalf("download gave %q", got)
	}

	if err := object.NewFileManager(c.Client).MakeDirectory(ctx, "[ds-DC0_C1] made", dc, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "made")); err != nil || !fi.IsDir() {
		t.Fatalf("MakeDirectory: %v", err)
	}
	vdm := object.NewVirtualDiskManager(c.Client)
	task, err := vdm.CreateVirtualDisk(ctx, "[ds-DC0_C0] disk.vmdk", dc, &types.FileBackedVirtualDiskSpec{
		VirtualDiskSpec: types.VirtualDiskSpec{DiskType: string(types.VirtualDiskTypeThin), AdapterType: string(types.VirtualDiskAdapterTypeLsiLogic)},
		CapacityKb:      1024,
	})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if task, err = vdm.CopyVirtualDisk(ctx, "[ds-DC0_C0] disk.vmdk", dc, "[ds-DC0_C1] made/disk.vmdk", dc, nil, false); err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "made", "disk.vmdk")); err != nil {
		t.Fatalf("CopyVirtualDisk: %v", err)
	}
	if got := datastoreFile(inst.model.Service.Context, object.DatastorePath{Datastore: "ds-DC0_C1", Path: "up/file.txt"}); got != filepath.Join(dir, "up", "file.txt") {
		t.Fatalf("datastoreFile is %q", got)
	}

	inst.stop()
	_, c = startCluster(t, root, "-cluster-datastores")
	finder, _ = dcFinder(t, c)
	if ds, err = finder.Datastore(ctx, "ds-DC0_C1"); err != nil {
		t.Fatal(err)
	}
	if got := download(ds); !bytes.Equal(got, data) {
		t.Fatalf("after a restart, download gave %q", got)
	}
}

// TestNoClusterDatastoresWithoutTheFlag: without -cluster-datastores there
// is nfs0 only and the start-up line has its old keys.
func TestNoClusterDatastoresWithoutTheFlag(t *testing.T) {
	root := t.TempDir()
	inst, c := startCluster(t, root)
	if len(inst.info.Datastores) != 1 || inst.info.Datastores["nfs0"] == "" || inst.info.ClusterDatastores != nil {
		t.Fatalf("datastores %v, cluster datastores %v", inst.info.Datastores, inst.info.ClusterDatastores)
	}
	finder, _ := dcFinder(t, c)
	dss, err := finder.DatastoreList(context.Background(), "*")
	if err != nil || len(dss) != 1 || dss[0].Name() != "nfs0" {
		t.Fatalf("datastores %v (%v)", dss, err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 1 || entries[0].Name() != "nfs0" {
		t.Fatalf("datastore root holds %v (%v)", entries, err)
	}

	line, err := json.Marshal(inst.info)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(line, &keys); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for k := range keys {
		got = append(got, k)
	}
	sort.Strings(got)
	if want := []string{"about_uuid", "clusters", "datastores", "host", "port", "url"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("start-up line keys %v, want %v", got, want)
	}
}
