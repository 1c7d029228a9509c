package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stallWait is how long a test waits for what a stall does (or ends)
// before it fails, rather than hang.
const stallWait = 10 * time.Second

// waitStall polls GET /vcdriver/faults until rule id has hits hits and
// stalled transfers held now.
func (fx *faultFixture) waitStall(t *testing.T, id, hits, stalled int) {
	t.Helper()
	deadline := time.Now().Add(stallWait)
	for {
		rules := fx.rules(t)
		for _, r := range rules {
			if r.ID == id && r.Hits == hits && r.Stalled != nil && *r.Stalled == stalled {
				return
			}
		}
		if time.Now().After(deadline) {
			_, body := fx.control(t, http.MethodGet, faultsPath, "")
			t.Fatalf("rule %d: want %d hits, %d stalled; listed %s", id, hits, stalled, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ended waits for a transfer's outcome, failing after stallWait.
func ended[T any](t *testing.T, what string, done <-chan T) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(stallWait):
		t.Fatalf("%s: still running after %s", what, stallWait)
	}
	var zero T
	return zero
}

// stillRunning checks that a transfer has not ended within a moment.
func stillRunning[T any](t *testing.T, what string, done <-chan T) {
	t.Helper()
	select {
	case v := <-done:
		t.Fatalf("%s ended while stalled: %v", what, v)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestFaultStallFolderPut(t *testing.T) {
	fx := newFaultFixture(t)
	data := bytes.Repeat([]byte("0123456789"), 400000) // 4 MB
	id := fx.inject(t, `{"kind": "stall", "http_method": "PUT", "path": "s.bin", "cut_after_bytes": 1000}`)
	if _, body := fx.control(t, http.MethodGet, faultsPath, ""); !bytes.Contains(body, []byte(`"stalled":0`)) {
		t.Fatalf("listed %s", body)
	}

	done := make(chan error, 1)
	go func() { done <- fx.put("s.bin", data) }()
	fx.waitStall(t, id, 1, 1)
	stillRunning(t, "PUT", done)
	if status, body := fx.control(t, http.MethodDelete, fmt.Sprintf("%s/%d", faultsPath, id), ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	if err := ended(t, "PUT", done); err == nil {
		t.Fatal("stalled PUT succeeded")
	}
	if _, err := fx.get("s.bin"); err == nil {
		t.Fatal("the stalled PUT's file can be read")
	}
	if _, err := os.Stat(filepath.Join(fx.inst.info.Datastores["nfs0"], "s.bin")); !os.IsNotExist(err) {
		t.Fatalf("the stalled PUT's file is on the datastore: %v", err)
	}
	if err := fx.put("s.bin", data); err != nil {
		t.Fatalf("PUT after the stall: %v", err)
	}
}

func TestFaultStallNFCUpload(t *testing.T) {
	f := newImportFixture(t)
	fx := &faultFixture{f.testVCenter}
	stream, _, capacity := nfcFaultStream(t)
	const n = 262144
	type result struct {
		status int
		msg    string
		err    error
	}
	post := func(u string) <-chan result {
		done := make(chan result, 1)
		go func() {
			status, msg, err := tryUpload(http.MethodPost, u, stream)
			done <- result{status, msg, err}
		}()
		return done
	}

	// Stalled after 256 KiB until the rule is cleared, then cut.
	lease := f.importVM(t, "stall", capacity)
	id := fx.inject(t, `{"kind": "stall", "target": "nfc", "http_method": "POST", "cut_after_bytes": 262144}`)
	done := post(diskURL(t, lease))
	fx.waitStall(t, id, 1, 1)
	stillRunning(t, "POST", done)
	st := f.leaseStats(t, lease)
	if st.State != "ready" || st.Files[0].State != "transferring" || st.Files[0].BytesReceived != n {
		t.Fatalf("stats while stalled: %+v", st)
	}
	fx.control(t, http.MethodDelete, faultsPath, "")
	if r := ended(t, "POST", done); r.err == nil {
		t.Fatalf("stalled POST answered: %d %q", r.status, r.msg)
	}
	st = f.leaseStats(t, lease)
	file := st.Files[0]
	if st.State != "ready" || file.State != "error" || file.BytesReceived != n ||
		!strings.Contains(file.Error, fmt.Sprintf("upload stalled after 262144 bytes, then cut (injected fault %d)", id)) {
		t.Fatalf("stats after the stall: %+v", st)
	}
	f.checkBrokenDisk(t, st, capacity)
	if m := f.manifestLen(t, lease); m != 0 {
		t.Fatalf("manifest of %d entries after a stalled upload", m)
	}
	f.abortRemoves(t, lease, "stall", st)

	// Stalled before the first byte; the lease's Abort ends the stall, the
	// rule stays listed.
	lease = f.importVM(t, "abort", capacity)
	id = fx.inject(t, `{"kind": "stall", "path": "/nfc/", "cut_after_bytes": 0}`)
	done = post(diskURL(t, lease))
	fx.waitStall(t, id, 1, 1)
	if st := f.leaseStats(t, lease); st.Files[0].State != "transferring" || st.Files[0].BytesReceived != 0 {
		t.Fatalf("stats while stalled: %+v", st)
	}
	begin := time.Now()
	if err := lease.Abort(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("Abort took %v", d)
	}
	if r := ended(t, "POST", done); r.err == nil {
		t.Fatalf("stalled POST answered: %d %q", r.status, r.msg)
	}
	fx.waitStall(t, id, 1, 0)
}

func TestFaultStallDownload(t *testing.T) {
	fx := newFaultFixture(t)
	data := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB
	if err := fx.put("g.bin", data); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	id := fx.inject(t, `{"kind": "stall", "http_method": "GET", "path": "g.bin", "cut_after_bytes": 1000, "times": 2}`)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	type read struct {
		n   int
		err error
	}
	// start GETs the file and reads its first n bytes, then reads on (the
	// returned channel has what that read got).
	start := func() (*http.Response, <-chan read) {
		t.Helper()
		type opened struct {
			resp *http.Response
			err  error
		}
		got := make(chan opened, 1)
		go func() {
			resp, err := client.Get(fx.folderURL("g.bin").String())
			got <- opened{resp, err}
		}()
		o := ended(t, "GET", got)
		if o.err != nil || o.resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %v %v", o.resp, o.err)
		}
		head := make(chan []byte, 1)
		go func() {
			b := make([]byte, n)
			k, _ := io.ReadFull(o.resp.Body, b)
			head <- b[:k]
		}()
		if b := ended(t, "reading the first bytes", head); !bytes.Equal(b, data[:n]) {
			t.Fatalf("first %d bytes of %d: %q...", len(b), n, b[:min(len(b), 20)])
		}
		rest := make(chan read, 1)
		go func() {
			b, err := io.ReadAll(o.resp.Body)
			rest <- read{len(b), err}
		}()
		return o.resp, rest
	}

	// The client goes away: the stall ends, the rule stays.
	resp, rest := start()
	fx.waitStall(t, id, 1, 1)
	stillRunning(t, "reading past the stall", rest)
	resp.Body.Close()
	ended(t, "reading on a closed body", rest)
	fx.waitStall(t, id, 1, 0)

	// The rule is cleared: the read fails, nothing more came.
	_, rest = start()
	fx.waitStall(t, id, 2, 1)
	stillRunning(t, "reading past the stall", rest)
	fx.control(t, http.MethodDelete, fmt.Sprintf("%s/%d", faultsPath, id), "")
	if r := ended(t, "reading past the stall", rest); r.err == nil || r.n != 0 {
		t.Fatalf("after the stall: %d more bytes, %v", r.n, r.err)
	}
	if got, err := fx.get("g.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET after the stall: %d bytes, %v", len(got), err)
	}
}

func TestFaultStallRuleChecks(t *testing.T) {
	for _, c := range []struct {
		rule, target, err string
	}{
		{`{"kind": "stall", "cut_after_bytes": 0}`, targetFolder, ""},
		{`{"kind": "stall", "target": "nfc", "http_method": "POST", "cut_after_bytes": 65536}`, targetNFC, ""},
		{`{"kind": "stall", "path": "/nfc/", "http_method": "get", "cut_after_bytes": 1000, "times": 0, "skip": 1}`, targetNFC, ""},
		{`{"kind": "stall", "http_method": "PUT"}`, "", "needs cut_after_bytes"},
		{`{"kind": "stall", "status": 507, "cut_after_bytes": 10}`, "", "takes no status"},
		{`{"kind": "stall", "http_method": "POST", "cut_after_bytes": 10}`, "", "POST is for target nfc"},
		{`{"kind": "stall", "target": "nfc", "http_method": "DELETE", "cut_after_bytes": 10}`, "", "http_method"},
		{`{"kind": "stall", "target": "folder", "path": "/nfc/x", "cut_after_bytes": 10}`, "", "not under /folder/"},
		{`{"kind": "stall", "cut_after_bytes": -1}`, "", ">= 0"},
	} {
		rule, err := decodeRule(strings.NewReader(c.rule))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.rule, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.rule, err)
		case c.err == "" && (rule.Target != c.target || !rule.transfer()):
			t.Errorf("%s: target %q, want %q", c.rule, rule.Target, c.target)
		}
	}
	rule, _ := decodeRule(strings.NewReader(`{"kind": "stall", "cut_after_bytes": 0}`))
	out, _ := json.Marshal(rule.listed())
	if rule.Times != 1 || !bytes.Contains(out, []byte(`"stalled":0`)) {
		t.Fatalf("listed %s", out)
	}
}
