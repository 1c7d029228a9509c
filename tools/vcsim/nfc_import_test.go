package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

// importFixture is a launcher ready for ImportVApp into nfs0.
type importFixture struct {
	*testVCenter
	pool   *object.ResourcePool
	folder *object.Folder
	ds     *object.Datastore
}

func newImportFixture(t *testing.T, extraFlags ...string) *importFixture {
	t.Helper()
	ctx := context.Background()
	f := &importFixture{testVCenter: newTestVCenter(t, extraFlags...)}
	finder := find.NewFinder(f.c.Client, true)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		t.Fatal(err)
	}
	finder.SetDatacenter(dc)
	if f.pool, err = finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources"); err != nil {
		t.Fatal(err)
	}
	if f.ds, err = finder.Datastore(ctx, "nfs0"); err != nil {
		t.Fatal(err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.folder = folders.VmFolder
	return f
}

// importVM starts the import of a VM with one disk of capacity bytes, as
// govc import.vmdk does, and returns its lease.
func (f *importFixture) importVM(t *testing.T, name string, capacity int64) *nfc.Lease {
	t.Helper()
	ctx := context.Background()
	descriptor, err := (&vmdk.Info{Name: name + ".vmdk", ImportName: name, Capacity: capacity}).OVF()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ovf.NewManager(f.c.Client).CreateImportSpec(ctx, descriptor, f.pool, f.ds,
		&types.OvfCreateImportSpecParams{EntityName: name, DiskProvisioning: string(types.VirtualDiskTypeThin)})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Error != nil {
		t.Fatal(spec.Error[0].LocalizedMessage)
	}
	lease, err := f.pool.ImportVApp(ctx, spec.ImportSpec, f.folder, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lease
}

// upload sends body to a lease URL, with a Content-Length or chunked.
func upload(t *testing.T, method, u string, body []byte, chunked bool) (int, string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // no length known: Transfer-Encoding: chunked
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-vnd.vmware-streamVmdk")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// importStats is an import lease's entry in GET /vcdriver/nfc.
type importStats struct {
	Lease         string `json:"lease"`
	Kind          string `json:"kind"`
	Entity        string `json:"entity"`
	State         string `json:"state"`
	Bytes         int64  `json:"bytes"`
	BytesReceived int64  `json:"bytes_received"`
	BytesPulled   int64  `json:"bytes_pulled"`
	BytesWritten  int64  `json:"bytes_written"`
	Files         []struct {
		Name          string `json:"name"`
		ImportKey     string `json:"import_key"`
		File          string `json:"file"`
		Disk          bool   `json:"disk"`
		State         string `json:"state"`
		Error         string `json:"error"`
		Transfers     int    `json:"transfers"`
		Capacity      int64  `json:"capacity"`
		Grains        int    `json:"grains"`
		ZeroGrains    int    `json:"zero_grains"`
		BytesReceived int64  `json:"bytes_received"`
		BytesPulled   int64  `json:"bytes_pulled"`
		BytesWritten  int64  `json:"bytes_written"`
	} `json:"files"`
}

func (f *importFixture) leaseStats(t *testing.T, lease *nfc.Lease) importStats {
	t.Helper()
	_, body := httpGet(t, f.inst.server.URL.Scheme+"://"+f.inst.server.URL.Host+nfcStatsPath)
	var all struct {
		Leases []importStats `json:"leases"`
	}
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	for _, l := range all.Leases {
		if l.Lease == lease.Reference().Value {
			return l
		}
	}
	t.Fatalf("lease %s not in %s", lease.Reference().Value, nfcStatsPath)
	return importStats{}
}

// local is a datastore path's file on this machine.
func (f *importFixture) local(t *testing.T, file string) string {
	t.Helper()
	var p object.DatastorePath
	if !p.FromString(file) {
		t.Fatalf("not a datastore path: %q", file)
	}
	return filepath.Join(f.inst.info.Datastores[p.Datastore], filepath.FromSlash(p.Path))
}

// checkDisk checks the imported disk: a descriptor of one VMFS extent,
// thin, holding raw.
func (f *importFixture) checkDisk(t *testing.T, st importStats, raw []byte, capacity int64) {
	t.Helper()
	if len(st.Files) != 1 || !st.Files[0].Disk {
		t.Fatalf("want one disk in the lease, got %+v", st.Files)
	}
	descriptor := f.local(t, st.Files[0].File)
	text, err := os.ReadFile(descriptor)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(text, []byte(`createType="vmfs"`)) || !bytes.Contains(text, []byte(`ddb.thinProvisioned = "1"`)) ||
		!bytes.Contains(text, []byte(`ddb.adapterType = "lsilogic"`)) {
		t.Fatalf("descriptor:\n%s", text)
	}
	extents, size, err := flatExtents(descriptor)
	if err != nil || len(extents) != 1 || size != capacity || !strings.HasSuffix(extents[0].file, "-flat.vmdk") {
		t.Fatalf("descriptor says %+v, %d bytes (%v):\n%s", extents, size, err, text)
	}
	checkThin(t, extents[0].file, raw, capacity)
}

func TestImportUploadsLandAsThinDisks(t *testing.T) {
	f := newImportFixture(t)
	ctx := context.Background()
	capacity := int64(3<<20 + 3<<10) // not whole grains
	raw := rawDisk(capacity, 11)
	var esx bytes.Buffer
	if _, err := writeStreamOptimized(&esx, bytes.NewReader(raw), capacity, "lsilogic"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method string
		chunked      bool
		stream       func(t *testing.T) []byte
	}{
		{"esx layout POST chunked", http.MethodPost, true, func(*testing.T) []byte { return esx.Bytes() }},
		{"qemu-img layout PUT", http.MethodPut, false, func(t *testing.T) []byte {
			b, err := os.ReadFile(qemuStreamOptimized(t, raw))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := c.stream(t)
			lease := f.importVM(t, "import"+string(rune('A'+i)), capacity)
			u := diskURL(t, lease)
			if status, msg := upload(t, c.method, u, stream, c.chunked); status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", c.method, u, status, msg)
			}
			st := f.leaseStats(t, lease)
			f.checkDisk(t, st, raw, capacity)
			file := st.Files[0]
			if st.Kind != "import" || st.State != "ready" || file.State != "done" || file.Transfers != 1 ||
				st.BytesReceived != int64(len(stream)) || file.BytesReceived != st.BytesReceived || st.Bytes != st.BytesReceived ||
				st.BytesWritten != dataBytes(raw) || file.BytesWritten != st.BytesWritten || file.Capacity != capacity || st.BytesPulled != 0 ||
				file.Grains != dataGrains(raw) || file.ZeroGrains != 0 {
				t.Fatalf("stats after a %d byte upload of %d bytes of data: %+v", len(stream), dataBytes(raw), st)
			}
			manifest, err := lease.GetManifest(ctx)
			sum := sha1.Sum(stream)
			if err != nil || len(manifest) != 1 || manifest[0].Sha1 != hex.EncodeToString(sum[:]) || manifest[0].Size != int64(len(stream)) ||
				!manifest[0].Disk || manifest[0].Capacity != capacity || manifest[0].PopulatedSize != dataBytes(raw) {
				t.Fatalf("manifest: %+v %v", manifest, err)
			}

			// Complete leaves the VM, and the rest of the launcher reads
			// its disk: an export streams the same content.
			if err := lease.Complete(ctx); err != nil {
				t.Fatal(err)
			}
			if st := f.leaseStats(t, lease); st.State != "completed" {
				t.Fatalf("state %q after HttpNfcLeaseComplete", st.State)
			}
			if status, _ := upload(t, c.method, u, stream, c.chunked); status != http.StatusNotFound {
				t.Fatalf("a completed lease still takes uploads: %d", status)
			}
			vm := object.NewVirtualMachine(f.c.Client, types.ManagedObjectReference{Type: "VirtualMachine", Value: st.Entity})
			export, err := vm.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			status, body := httpGet(t, diskURL(t, export))
			if status != http.StatusOK {
				t.Fatalf("export of the imported VM: %d", status)
			}
			_ = export.Complete(ctx)
			flat, _, err := decodeTo(t, body)
			if err != nil {
				t.Fatal(err)
			}
			checkThin(t, flat, raw, capacity)
		})
	}
}

func TestImportOfAnAllZeroDisk(t *testing.T) {
	f := newImportFixture(t)
	capacity := int64(4 << 20)
	raw := make([]byte, capacity)
	stream, err := os.ReadFile(qemuStreamOptimized(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	lease := f.importVM(t, "zeros", capacity)
	if status, msg := upload(t, http.MethodPut, diskURL(t, lease), stream, true); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, msg)
	}
	st := f.leaseStats(t, lease)
	f.checkDisk(t, st, raw, capacity)
	if st.BytesWritten != 0 || st.BytesReceived != 64<<10 || st.Files[0].Grains != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestImportOfACorruptBodyIs400AndAbortRemovesTheVM(t *testing.T) {
	f := newImportFixture(t)
	ctx := context.Background()
	capacity := int64(2 << 20)
	raw := rawDisk(capacity, 13)
	var esx bytes.Buffer
	if _, err := writeStreamOptimized(&esx, bytes.NewReader(raw), capacity, ""); err != nil {
		t.Fatal(err)
	}
	lease := f.importVM(t, "corrupt", capacity)
	u := diskURL(t, lease)
	cut := esx.Bytes()[:esx.Len()-sectorSize]
	status, msg := upload(t, http.MethodPut, u, cut, false)
	if status != http.StatusBadRequest || !strings.Contains(msg, "without an end-of-stream marker") || strings.Contains(msg, "\n") {
		t.Fatalf("PUT of a cut stream: %d %q", status, msg)
	}
	status, msg = upload(t, http.MethodPost, u, []byte("not a vmdk"), true)
	if status != http.StatusBadRequest || !strings.Contains(msg, "inside the header") {
		t.Fatalf("POST of junk: %d %q", status, msg)
	}
	st := f.leaseStats(t, lease)
	if st.State != "ready" || st.Files[0].State != "error" || !strings.Contains(st.Files[0].Error, "inside the header") ||
		st.BytesReceived != int64(len(cut))+10 {
		t.Fatalf("stats after two bad uploads: %+v", st)
	}

	// The lease still takes a good upload, and Abort then removes the VM
	// and its files.
	if status, msg := upload(t, http.MethodPut, u, esx.Bytes(), false); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, msg)
	}
	st = f.leaseStats(t, lease)
	dir := filepath.Dir(f.local(t, st.Files[0].File))
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := lease.Abort(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := f.leaseStats(t, lease); st.State != "aborted" {
		t.Fatalf("state %q after HttpNfcLeaseAbort", st.State)
	}
	if _, err := find.NewFinder(f.c.Client, true).VirtualMachine(ctx, "/DC0/vm/corrupt"); err == nil {
		t.Fatal("the aborted import's VM is still there")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("the aborted import's folder is still there: %v %v", err, entries)
	}
	if status, _ := upload(t, http.MethodPut, u, esx.Bytes(), false); status != http.StatusNotFound {
		t.Fatalf("an aborted lease still takes uploads: %d", status)
	}
}

// An upload still coming in when the lease is aborted is cut off.
func TestAbortStopsAnUploadInFlight(t *testing.T) {
	f := newImportFixture(t)
	ctx := context.Background()
	capacity := int64(2 << 20)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(rawDisk(capacity, 29)), capacity, ""); err != nil {
		t.Fatal(err)
	}
	lease := f.importVM(t, "inflight", capacity)
	u := diskURL(t, lease)
	body, w := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, u, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0 // cut off before the answer: fine too
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := w.Write(stream.Bytes()[:stream.Len()/2]); err != nil {
		t.Fatal(err)
	}
	for f.leaseStats(t, lease).Files[0].State != "transferring" {
		time.Sleep(10 * time.Millisecond)
	}
	begin := time.Now()
	if err := lease.Abort(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("Abort took %v", d)
	}
	select {
	case status := <-done:
		if status != 0 && status != http.StatusNotFound {
			t.Fatalf("upload cut by Abort: %d", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upload still running after Abort")
	}
	_ = w.Close()
}
