package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/nfc"
)

// tryUpload is upload (nfc_import_test.go) for a request that may be cut:
// status and answer, or the client's error.
func tryUpload(method, u string, body []byte) (int, string, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-vnd.vmware-streamVmdk")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg)), err
}

// nfcFaultStream is an ESX-layout stream of an 8 MiB disk, several MiB
// long, so that a cut after 256 KiB comes after some grains.
func nfcFaultStream(t *testing.T) ([]byte, []byte, int64) {
	t.Helper()
	capacity := int64(8 << 20)
	raw := rawDisk(capacity, 31)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), capacity, "lsilogic"); err != nil {
		t.Fatal(err)
	}
	if stream.Len() < 1<<20 {
		t.Fatalf("stream of %d bytes: too short for the cuts", stream.Len())
	}
	return stream.Bytes(), raw, capacity
}

func (f *importFixture) manifestLen(t *testing.T, lease *nfc.Lease) int {
	t.Helper()
	m, err := lease.GetManifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// checkBrokenDisk checks a disk whose upload failed: not rewritten as the
// thin disk a whole stream makes, its extent short of the capacity.
func (f *importFixture) checkBrokenDisk(t *testing.T, st importStats, capacity int64) {
	t.Helper()
	descriptor := f.local(t, st.Files[0].File)
	text, err := os.ReadFile(descriptor)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(text, []byte(`ddb.thinProvisioned = "1"`)) {
		t.Fatalf("descriptor rewritten after a failed upload:\n%s", text)
	}
	_, flat := diskDescriptor(descriptor)
	if fi, err := os.Stat(filepath.Join(filepath.Dir(descriptor), flat)); err == nil && fi.Size() >= capacity {
		t.Fatalf("flat extent of %d bytes after a failed upload", fi.Size())
	}
}

// abortRemoves aborts the lease and checks that the VM and its folder are
// gone.
func (f *importFixture) abortRemoves(t *testing.T, lease *nfc.Lease, name string, st importStats) {
	t.Helper()
	ctx := context.Background()
	descriptor := f.local(t, st.Files[0].File)
	_, flat := diskDescriptor(descriptor)
	if err := lease.Abort(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := find.NewFinder(f.c.Client, true).VirtualMachine(ctx, "/DC0/vm/"+name); err == nil {
		t.Fatalf("the aborted import's VM %s is still there", name)
	}
	for _, p := range []string{filepath.Join(filepath.Dir(descriptor), flat), filepath.Dir(descriptor)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s still there after Abort: %v", p, err)
		}
	}
}

func TestFaultNFCUploadStatus(t *testing.T) {
	f := newImportFixture(t)
	fx := &faultFixture{f.testVCenter}
	stream, raw, capacity := nfcFaultStream(t)
	lease := f.importVM(t, "status", capacity)
	u := diskURL(t, lease)

	// A folder rule (any method), a folder reset and an NFC rule for GET
	// only: none fires for the upload.
	fx.inject(t, `{"kind": "http_error", "status": 500, "times": 0}`)
	fx.inject(t, `{"kind": "reset", "http_method": "PUT"}`)
	fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "GET", "status": 500}`)
	id := fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "post", "status": 507}`)
	status, msg, err := tryUpload(http.MethodPost, u, stream)
	if err != nil || status != http.StatusInsufficientStorage {
		t.Fatalf("POST: %d %q %v", status, msg, err)
	}
	st := f.leaseStats(t, lease)
	if st.State != "ready" || st.Files[0].State != "waiting" || st.BytesReceived != 0 {
		t.Fatalf("stats after a refused upload: %+v", st)
	}
	for _, r := range fx.rules(t) {
		want := 0
		if r.ID == id {
			want = 1
			if r.Target != targetNFC || r.HTTPMethod != http.MethodPost {
				t.Errorf("listed %+v", r)
			}
		}
		if r.Hits != want || r.Seen != want {
			t.Errorf("rule %d (%s %s %s): %d hits, %d seen", r.ID, r.Kind, r.Target, r.HTTPMethod, r.Hits, r.Seen)
		}
	}

	// Times up: the upload goes through; the folder rules still have not
	// fired.
	if status, msg := upload(t, http.MethodPut, u, stream, false); status != http.StatusOK {
		t.Fatalf("PUT after the fault: %d %s", status, msg)
	}
	f.checkDisk(t, f.leaseStats(t, lease), raw, capacity)
	for _, r := range fx.rules(t) {
		if r.Target == targetFolder && r.Seen != 0 {
			t.Errorf("folder rule %+v fired for /nfc/", r)
		}
	}

	// And NFC rules do not fire for /folder/.
	fx.control(t, http.MethodDelete, faultsPath, "")
	fx.inject(t, `{"kind": "http_error", "path": "/nfc/", "status": 500, "times": 0}`)
	fx.inject(t, `{"kind": "reset", "target": "nfc", "times": 0}`)
	fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "PUT", "cut_after_bytes": 10, "times": 0}`)
	data := bytes.Repeat([]byte("folder"), 10000)
	if err := fx.put("x/a.bin", data); err != nil {
		t.Fatalf("folder PUT under NFC rules: %v", err)
	}
	if got, err := fx.get("x/a.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("folder GET under NFC rules: %d bytes, %v", len(got), err)
	}
	for _, r := range fx.rules(t) {
		if r.Target != targetNFC || r.Seen != 0 {
			t.Errorf("NFC rule %+v fired for /folder/", r)
		}
	}
}

func TestFaultNFCUploadCut(t *testing.T) {
	f := newImportFixture(t)
	fx := &faultFixture{f.testVCenter}
	stream, raw, capacity := nfcFaultStream(t)
	const cut = 256 << 10

	// The connection goes after 256 KiB: the client sees it broken, the
	// lease a failed upload.
	lease := f.importVM(t, "cut", capacity)
	u := diskURL(t, lease)
	fx.inject(t, `{"kind": "http_error", "path": "/nfc/", "http_method": "POST", "cut_after_bytes": 262144}`)
	if status, msg, err := tryUpload(http.MethodPost, u, stream); err == nil {
		t.Fatalf("cut POST answered: %d %q", status, msg)
	}
	st := f.leaseStats(t, lease)
	file := st.Files[0]
	if st.State != "ready" || file.State != "error" || !strings.Contains(file.Error, "connection cut after 262144 bytes") ||
		file.BytesReceived != cut || file.BytesWritten == 0 || file.Transfers != 0 {
		t.Fatalf("stats after a cut upload: %+v", st)
	}
	f.checkBrokenDisk(t, st, capacity)
	if n := f.manifestLen(t, lease); n != 0 {
		t.Fatalf("manifest of %d entries after a cut upload", n)
	}
	f.abortRemoves(t, lease, "cut", st)

	// skip and times; a cut retry takes a disk that was whole out of the
	// manifest, the next upload puts it back.
	lease = f.importVM(t, "retry", capacity)
	u = diskURL(t, lease)
	id := fx.inject(t, `{"kind": "http_error", "target": "nfc", "cut_after_bytes": 262144, "skip": 1}`)
	for i, wantCut := range []bool{false, true, false} {
		status, msg, err := tryUpload(http.MethodPost, u, stream)
		if cutOff := err != nil; cutOff != wantCut || (!cutOff && status != http.StatusOK) {
			t.Fatalf("upload %d: %d %q %v", i, status, msg, err)
		}
		st := f.leaseStats(t, lease)
		if n := f.manifestLen(t, lease); (n == 0) != wantCut {
			t.Fatalf("upload %d: manifest of %d entries", i, n)
		}
		if wantCut {
			if st.Files[0].State != "error" {
				t.Fatalf("upload %d: %+v", i, st)
			}
			continue
		}
		f.checkDisk(t, st, raw, capacity)
		m, _ := lease.GetManifest(context.Background())
		if m[0].PopulatedSize != dataBytes(raw) || m[0].Size != int64(len(stream)) {
			t.Fatalf("upload %d: manifest %+v", i, m[0])
		}
	}
	for _, r := range fx.rules(t) {
		if r.ID == id && (r.Hits != 1 || r.Seen != 2) {
			t.Fatalf("listed %+v", r)
		}
	}
	if st := f.leaseStats(t, lease); st.Files[0].Transfers != 2 || st.BytesReceived != 2*int64(len(stream))+cut {
		t.Fatalf("stats after three uploads: %+v", st)
	}
}

func TestFaultNFCUploadFullMidway(t *testing.T) {
	f := newImportFixture(t)
	fx := &faultFixture{f.testVCenter}
	stream, _, capacity := nfcFaultStream(t)
	lease := f.importVM(t, "full", capacity)
	u := diskURL(t, lease)
	fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "POST", "status": 507, "cut_after_bytes": 262144}`)
	status, msg, err := tryUpload(http.MethodPost, u, stream)
	if err != nil || status != http.StatusInsufficientStorage {
		t.Fatalf("POST: %d %q %v", status, msg, err)
	}
	st := f.leaseStats(t, lease)
	file := st.Files[0]
	if st.State != "ready" || file.State != "error" || !strings.Contains(file.Error, "HTTP 507 after 262144 bytes") ||
		file.BytesReceived != 262144 {
		t.Fatalf("stats after a datastore full midway: %+v", st)
	}
	f.checkBrokenDisk(t, st, capacity)
	if n := f.manifestLen(t, lease); n != 0 {
		t.Fatalf("manifest of %d entries after a failed upload", n)
	}
	f.abortRemoves(t, lease, "full", st)
}

func TestFaultNFCExportGet(t *testing.T) {
	f := newExportFixture(t)
	fx := &faultFixture{f.testVCenter}
	f.powerOff(t)
	lease, err := f.vm.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := diskURL(t, lease)
	fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "PUT", "status": 500}`)
	fx.inject(t, `{"kind": "http_error", "http_method": "GET", "status": 500}`) // /folder/
	fx.inject(t, `{"kind": "http_error", "target": "nfc", "http_method": "GET", "status": 503}`)
	if status, _ := httpGet(t, u); status != http.StatusServiceUnavailable {
		t.Fatalf("GET: %d", status)
	}
	fx.inject(t, `{"kind": "http_error", "path": "/nfc/", "http_method": "GET", "cut_after_bytes": 1000}`)
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(body) != 1000 {
		t.Fatalf("cut GET: %d bytes, %v", len(body), err)
	}
	fx.inject(t, `{"kind": "reset", "path": "/nfc/", "http_method": "GET"}`)
	// On a new connection: one reset on a kept-alive connection is retried.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(u); err == nil {
		t.Fatal("reset GET answered")
	}
	status, body := httpGet(t, u)
	if status != http.StatusOK {
		t.Fatalf("GET after the faults: %d", status)
	}
	if _, stats, err := decodeTo(t, body); err != nil || stats.Capacity != 1<<30 {
		t.Fatalf("GET after the faults: %+v %v", stats, err)
	}
	for _, r := range fx.rules(t) {
		if want := r.HTTPMethod == http.MethodGet && r.Target == targetNFC; (r.Hits == 1) != want {
			t.Errorf("listed %+v", r)
		}
	}
	if err := lease.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFaultNFCRuleChecks(t *testing.T) {
	for _, c := range []struct {
		rule, target, err string
	}{
		{`{"kind": "http_error", "status": 507}`, targetFolder, ""},
		{`{"kind": "http_error", "path": "/nfc/", "status": 507}`, targetNFC, ""},
		{`{"kind": "http_error", "path": "disk-0.vmdk", "target": "nfc", "http_method": "put", "status": 507}`, targetNFC, ""},
		{`{"kind": "reset", "target": "nfc"}`, targetNFC, ""},
		{`{"kind": "reset", "method": "CurrentTime"}`, "", ""},
		{`{"kind": "http_error", "http_method": "POST", "status": 507}`, "", "POST is for target nfc"},
		{`{"kind": "http_error", "target": "nfc", "http_method": "DELETE", "status": 507}`, "", "http_method"},
		{`{"kind": "http_error", "target": "nope", "status": 507}`, "", "target is"},
		{`{"kind": "http_error", "target": "folder", "path": "/nfc/x", "status": 507}`, "", "not under /folder/"},
		{`{"kind": "reset", "target": "nfc", "path": "/folder/x"}`, "", "not under /nfc/"},
	} {
		rule, err := decodeRule(strings.NewReader(c.rule))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.rule, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.rule, err)
		case c.err == "" && rule.Target != c.target:
			t.Errorf("%s: target %q, want %q", c.rule, rule.Target, c.target)
		}
	}
}
