package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// exportFixture is a launcher with one VM whose disk (1 GiB device) has a
// 2 MiB extent holding data at its start and in its last 4 KiB.
type exportFixture struct {
	*testVCenter
	dir  string // the VM's folder on this machine
	want []byte // the disk's content
}

func newExportFixture(t *testing.T) *exportFixture {
	t.Helper()
	v := newTestVCenter(t)
	f := &exportFixture{testVCenter: v, dir: filepath.Join(v.inst.info.Datastores["nfs0"], "DC0_C0_RP0_VM0")}

	// The disk as vCenter writes one: a descriptor naming a flat extent.
	capacity := 2 << 20
	descriptor := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n" +
		"RW 4096 VMFS \"disk1-flat.vmdk\"\n\nddb.adapterType = \"lsilogic\"\n"
	f.want = make([]byte, capacity)
	copy(f.want, bytes.Repeat([]byte("vcsim export "), 5000))
	copy(f.want[capacity-4096:], bytes.Repeat([]byte{0xee}, 4096))
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "disk1.vmdk"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "disk1-flat.vmdk"), f.want, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *exportFixture) powerOff(t *testing.T) {
	task, err := f.vm.PowerOff(context.Background())
	if err == nil {
		err = task.Wait(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// diskURL waits for the lease and returns the URL of its one disk.
func diskURL(t *testing.T, lease *nfc.Lease) string {
	t.Helper()
	info, err := lease.Wait(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, d := range info.DeviceUrl {
		if d.Disk != nil && *d.Disk {
			urls = append(urls, d.Url)
		}
	}
	if len(urls) != 1 {
		t.Fatalf("want one disk URL, got %v", info.DeviceUrl)
	}
	return urls[0]
}

// httpGet is a GET of u: status and body.
func httpGet(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// checkStreamOptimized has qemu-img vouch for a served disk: the VM's disk
// device says 1 GiB, so the extent's bytes, then zeros.
func (f *exportFixture) checkStreamOptimized(t *testing.T, body []byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "export.vmdk")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, f.want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(raw, 1<<30); err != nil {
		t.Fatal(err)
	}
	qemuReadsAs(t, path, raw)
}

func (f *exportFixture) leaseStates(t *testing.T) map[string]string {
	t.Helper()
	var stats struct {
		Leases []struct{ Lease, State string } `json:"leases"`
	}
	_, body := httpGet(t, f.inst.server.URL.Scheme+"://"+f.inst.server.URL.Host+nfcStatsPath)
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, l := range stats.Leases {
		states[l.Lease] = l.State
	}
	return states
}

func TestExportSnapshotServesTheDiskStreamOptimized(t *testing.T) {
	f := newExportFixture(t)
	ctx := context.Background()
	task, err := f.vm.CreateSnapshot(ctx, "s1", "", false, false)
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := info.Result.(types.ManagedObjectReference)
	// Searches over every object in the Map still work with ours in it.
	uuid := instanceUUID(t, f.vm)
	if found, err := object.NewSearchIndex(f.c.Client).FindByUuid(ctx, nil, uuid, true, types.NewBool(true)); err != nil || found == nil {
		t.Fatalf("FindByUuid(%s): %v %v", uuid, found, err)
	}
	res, err := methods.ExportSnapshot(ctx, f.c.Client, &types.ExportSnapshot{This: snapshot})
	if err != nil {
		t.Fatal(err)
	}
	lease := nfc.NewLease(f.c.Client, res.Returnval)
	u := diskURL(t, lease)

	status, body := httpGet(t, u)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, status, body)
	}
	f.checkStreamOptimized(t, body)
	if !bytes.Contains(body[512:1024], []byte(`createType="streamOptimized"`)) {
		t.Fatal("no streamOptimized descriptor")
	}

	if err := lease.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.leaseStates(t)[res.Returnval.Value]; s != "completed" {
		t.Fatalf("lease state %q after HttpNfcLeaseComplete", s)
	}
	if status, _ := httpGet(t, u); status != http.StatusNotFound {
		t.Fatalf("a completed lease still serves: %d", status)
	}
}

func TestExportVmNeedsAPoweredOffVM(t *testing.T) {
	f := newExportFixture(t)
	ctx := context.Background()
	_, err := f.vm.Export(ctx)
	if fault, ok := soap.ToSoapFault(err).VimFault().(types.InvalidPowerState); !ok || fault.ExistingState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("ExportVm of a powered-on VM: %v", err)
	}

	f.powerOff(t)
	lease, err := f.vm.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status, body := httpGet(t, diskURL(t, lease))
	if status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, body)
	}
	f.checkStreamOptimized(t, body)
	if err := lease.Abort(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s := f.leaseStates(t)[lease.Reference().Value]; s != "aborted" {
		t.Fatalf("lease state %q after HttpNfcLeaseAbort", s)
	}
}

func TestExportOfAMissingDiskErrsTheLease(t *testing.T) {
	f := newExportFixture(t)
	ctx := context.Background()
	f.powerOff(t)
	if err := os.Remove(filepath.Join(f.dir, "disk1.vmdk")); err != nil {
		t.Fatal(err)
	}
	lease, err := f.vm.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lease.Wait(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "disk1.vmdk was not found") {
		t.Fatalf("lease wait: %v", err)
	}
}

func TestExportWithoutExtentIsZeros(t *testing.T) {
	f := newExportFixture(t)
	f.powerOff(t)
	if err := os.Remove(filepath.Join(f.dir, "disk1-flat.vmdk")); err != nil {
		t.Fatal(err)
	}
	lease, err := f.vm.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	status, body := httpGet(t, diskURL(t, lease))
	if status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, body)
	}
	f.want = make([]byte, len(f.want))
	f.checkStreamOptimized(t, body)
}

func TestOverlayShowsParentsWhereTheChildIsZero(t *testing.T) {
	child := make([]byte, 3*grainBytes)
	parent := bytes.Repeat([]byte{1}, 3*grainBytes)
	grandparent := bytes.Repeat([]byte{2}, 3*grainBytes)
	child[grainBytes+7] = 9 // the child wrote into its second grain
	clear(parent[2*grainBytes:])
	o := &overlay{layers: []io.Reader{bytes.NewReader(child), bytes.NewReader(parent), bytes.NewReader(grandparent)}}
	got := make([]byte, 3*grainBytes)
	if _, err := io.ReadFull(o, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:grainBytes], parent[:grainBytes]) ||
		!bytes.Equal(got[grainBytes:2*grainBytes], child[grainBytes:2*grainBytes]) ||
		!bytes.Equal(got[2*grainBytes:], grandparent[2*grainBytes:]) {
		t.Fatal("overlay picked the wrong layers")
	}
}
