package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/progress"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type faultFixture struct{ *testVCenter }

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	return &faultFixture{newTestVCenter(t)}
}

// login replaces the client, as a rule may have ended its session.
func (fx *faultFixture) login(t *testing.T) {
	t.Helper()
	fx.c = newTestClient(t, fx.inst)
}

func (fx *faultFixture) url(path string) string {
	u := *fx.inst.server.URL
	u.User = nil
	return u.Scheme + "://" + u.Host + path
}

// control sends a request to the faults endpoint, returns status and body.
func (fx *faultFixture) control(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, fx.url(path), strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

func (fx *faultFixture) inject(t *testing.T, rule string) int {
	t.Helper()
	status, body := fx.control(t, http.MethodPost, faultsPath, rule)
	if status != http.StatusCreated {
		t.Fatalf("inject %s: %d %s", rule, status, body)
	}
	var got struct{ ID int }
	if err := json.Unmarshal(body, &got); err != nil || got.ID == 0 {
		t.Fatalf("inject answer %s: %v", body, err)
	}
	return got.ID
}

func (fx *faultFixture) rules(t *testing.T) []faultRule {
	t.Helper()
	_, body := fx.control(t, http.MethodGet, faultsPath, "")
	var got struct{ Faults []faultRule }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	return got.Faults
}

func (fx *faultFixture) powerState(t *testing.T, ctx context.Context) types.VirtualMachinePowerState {
	t.Helper()
	var props mo.VirtualMachine
	if err := fx.vm.Properties(ctx, fx.vm.Reference(), []string{"runtime.powerState"}, &props); err != nil {
		t.Fatal(err)
	}
	return props.Runtime.PowerState
}

func (fx *faultFixture) currentTime() error {
	_, err := methods.GetCurrentTime(context.Background(), fx.c.Client)
	return err
}

func TestFaultSOAPSkipTimesAndMessage(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	folder, err := find.NewFinder(fx.c.Client, true).Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	fx.inject(t, `{"kind": "soap_fault", "method": "CreateFolder", "object": "vm",
		"fault": "InvalidState", "message": "not now (simulated)", "skip": 1}`)
	if _, err := folder.CreateFolder(ctx, "first"); err != nil {
		t.Fatalf("skipped call refused: %v", err)
	}
	_, err = folder.CreateFolder(ctx, "second")
	if !soap.IsSoapFault(err) {
		t.Fatalf("want a SOAP fault, got %v", err)
	}
	f := soap.ToSoapFault(err)
	if _, ok := f.VimFault().(types.InvalidState); !ok || f.String != "not now (simulated)" {
		t.Fatalf("got %#v %q", f.VimFault(), f.String)
	}
	if _, err := folder.CreateFolder(ctx, "third"); err != nil {
		t.Fatalf("refused past times: %v", err)
	}
	rules := fx.rules(t)
	if len(rules) != 1 || rules[0].Hits != 1 || rules[0].Seen != 2 || rules[0].Times != 1 {
		t.Fatalf("listed %+v", rules)
	}
	// Another object's calls are not refused.
	fx.inject(t, `{"kind": "soap_fault", "method": "CreateFolder", "object": "nope", "times": 0}`)
	if _, err := folder.CreateFolder(ctx, "fourth"); err != nil {
		t.Fatalf("refused for another object: %v", err)
	}
}

func TestFaultDRSRuleRefused(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	cluster, err := find.NewFinder(fx.c.Client, true).ClusterComputeResource(ctx, "/DC0/host/DC0_C0")
	if err != nil {
		t.Fatal(err)
	}
	fx.inject(t, `{"kind": "soap_fault", "drs_rule": "refused", "message": "contradicts x"}`)
	add := func(name string) error {
		spec := &types.ClusterConfigSpecEx{RulesSpec: []types.ClusterRuleSpec{{
			ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
			Info: &types.ClusterAntiAffinityRuleSpec{
				ClusterRuleInfo: types.ClusterRuleInfo{Name: name, Enabled: types.NewBool(true)},
				Vm:              []types.ManagedObjectReference{fx.vm.Reference()},
			},
		}}}
		tk, err := cluster.Reconfigure(ctx, spec, true)
		if err != nil {
			return err
		}
		return tk.Wait(ctx)
	}
	if err := add("other"); err != nil {
		t.Fatalf("other rule refused: %v", err)
	}
	err = add("refused")
	if !soap.IsSoapFault(err) {
		t.Fatalf("want a SOAP fault, got %v", err)
	}
	f, ok := soap.ToSoapFault(err).VimFault().(types.InvalidArgument)
	if !ok || f.InvalidProperty != "rulesSpec" || len(f.FaultMessage) != 0 || soap.ToSoapFault(err).String != "contradicts x" {
		t.Fatalf("got %#v %q", f, soap.ToSoapFault(err).String)
	}
}

func TestFaultTaskFail(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	fx.inject(t, fmt.Sprintf(`{"kind": "task_fail", "method": "PowerOffVM_Task", "object": %q,
		"fault": "InsufficientResourcesFault", "message": "boom", "progress": [30, 60], "step_ms": 50}`, fx.uuid))
	tk, err := fx.vm.PowerOff(ctx)
	if err != nil {
		t.Fatalf("the call itself refused: %v", err)
	}
	sink := progressSink(make(chan progress.Report))
	seen := make(chan []int32)
	go func() {
		var got []int32
		for r := range sink {
			if n := int32(r.Percentage()); n > 0 && (len(got) == 0 || got[len(got)-1] != n) {
				got = append(got, n)
			}
		}
		seen <- got
	}()
	_, err = tk.WaitForResultEx(ctx, sink)
	progress := <-seen
	var te task.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a task error, got %v", err)
	}
	if f, ok := te.Fault().(*types.InsufficientResourcesFault); !ok || te.LocalizedMessage != "boom" || len(f.FaultMessage) != 0 {
		t.Fatalf("got %#v %q", te.Fault(), te.LocalizedMessage)
	}
	if len(progress) == 0 {
		t.Error("no progress reported")
	}
	var info mo.Task
	if err := tk.Properties(ctx, tk.Reference(), []string{"info"}, &info); err != nil {
		t.Fatal(err)
	}
	if info.Info.Entity == nil || *info.Info.Entity != fx.vm.Reference() {
		t.Fatalf("task entity %v", info.Info.Entity)
	}
	if s := fx.powerState(t, ctx); s != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("failed task did its work: %s", s)
	}
}

type progressSink chan progress.Report

func (s progressSink) Sink() chan<- progress.Report { return s }

func TestFaultTaskHangUntilCleared(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	id := fx.inject(t, `{"kind": "task_hang", "method": "PowerOffVM_Task", "progress": [40], "step_ms": 10}`)
	tk, err := fx.vm.PowerOff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var info mo.Task
		if err := tk.Properties(ctx, tk.Reference(), []string{"info"}, &info); err != nil {
			t.Fatal(err)
		}
		if info.Info.State == types.TaskInfoStateRunning && info.Info.Progress == 40 {
			break
		}
		if info.Info.State != types.TaskInfoStateRunning || time.Now().After(deadline) {
			t.Fatalf("task %s, progress %d", info.Info.State, info.Info.Progress)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The VM stays readable while its task hangs.
	quick, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if s := fx.powerState(t, quick); s != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("hung task did its work: %s", s)
	}
	if status, body := fx.control(t, http.MethodDelete, fmt.Sprintf("%s/%d", faultsPath, id), ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	if err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s := fx.powerState(t, ctx); s != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("after the hang: %s", s)
	}
}

func TestFaultTaskHangSeconds(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	fx.inject(t, `{"kind": "task_hang", "method": "PowerOffVM_Task", "seconds": 0.3}`)
	start := time.Now()
	tk, err := fx.vm.PowerOff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("done after %s", d)
	}
}

func TestFaultLatency(t *testing.T) {
	fx := newFaultFixture(t)
	fx.inject(t, `{"kind": "latency", "method": "CurrentTime", "ms": 300}`)
	for i := 0; i < 2; i++ { // times: until cleared
		start := time.Now()
		if err := fx.currentTime(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("call %d answered after %s", i, d)
		}
	}
	fx.control(t, http.MethodDelete, faultsPath, "")
	start := time.Now()
	if err := fx.currentTime(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("still slow after clearing: %s", d)
	}
}

func TestFaultResetSOAP(t *testing.T) {
	fx := newFaultFixture(t)
	fx.inject(t, `{"kind": "reset", "method": "CurrentTime"}`)
	err := fx.currentTime()
	if err == nil || soap.IsSoapFault(err) {
		t.Fatalf("want a connection error, got %v", err)
	}
	if err := fx.currentTime(); err != nil {
		t.Fatalf("reset more than once: %v", err)
	}
}

func (fx *faultFixture) folderURL(path string) *url.URL {
	u, _ := url.Parse(fx.url("/folder/" + path + "?dcPath=DC0&dsName=nfs0"))
	return u
}

func (fx *faultFixture) put(path string, data []byte) error {
	p := soap.DefaultUpload
	p.ContentLength = int64(len(data))
	return fx.c.Client.Upload(context.Background(), bytes.NewReader(data), fx.folderURL(path), &p)
}

func (fx *faultFixture) get(path string) ([]byte, error) {
	r, _, err := fx.c.Client.Download(context.Background(), fx.folderURL(path), &soap.DefaultDownload)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestFaultFolderHTTPErrorsAndCuts(t *testing.T) {
	fx := newFaultFixture(t)
	data := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB

	fx.inject(t, `{"kind": "http_error", "http_method": "PUT", "path": "a.bin", "status": 507}`)
	if err := fx.put("a.bin", data); err == nil || !strings.Contains(err.Error(), "507") {
		t.Fatalf("want 507, got %v", err)
	}
	fx.inject(t, `{"kind": "http_error", "http_method": "PUT", "cut_after_bytes": 1000}`)
	if err := fx.put("a.bin", data); err == nil {
		t.Fatal("cut upload succeeded")
	}
	// Full mid-upload: 507 after 1000 bytes, the rest unread.
	fx.inject(t, `{"kind": "http_error", "http_method": "PUT", "status": 507, "cut_after_bytes": 1000}`)
	if err := fx.put("a.bin", data); err == nil || !strings.Contains(err.Error(), "507") {
		t.Fatalf("want 507 mid-upload, got %v", err)
	}
	if err := fx.put("a.bin", data); err != nil {
		t.Fatalf("upload after the faults: %v", err)
	}

	fx.inject(t, `{"kind": "http_error", "http_method": "GET", "cut_after_bytes": 100}`)
	got, err := fx.get("a.bin")
	if err == nil || len(got) != 100 {
		t.Fatalf("cut download: %d bytes, %v", len(got), err)
	}
	fx.inject(t, `{"kind": "reset", "http_method": "GET"}`)
	if _, err := fx.get("a.bin"); err == nil {
		t.Fatal("reset download succeeded")
	}
	got, err = fx.get("a.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download after the faults: %d bytes, %v", len(got), err)
	}
}

func TestFaultSessionExpiry(t *testing.T) {
	fx := newFaultFixture(t)
	fx.inject(t, `{"kind": "session_expiry"}`)
	err := fx.currentTime()
	if !soap.IsSoapFault(err) {
		t.Fatalf("want NotAuthenticated, got %v", err)
	}
	if _, ok := soap.ToSoapFault(err).VimFault().(types.NotAuthenticated); !ok {
		t.Fatalf("got %#v", soap.ToSoapFault(err).VimFault())
	}
	if rules := fx.rules(t); rules[0].Hits < 1 {
		t.Fatalf("no session ended: %+v", rules)
	}
	fx.login(t)
	if err := fx.currentTime(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultRestart(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t)
	vms := func() int {
		list, err := find.NewFinder(fx.c.Client, true).VirtualMachineList(ctx, "/DC0/vm/*")
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	before := vms()
	fx.inject(t, `{"kind": "restart", "seconds": 0.5}`)
	if err := fx.currentTime(); err == nil || soap.IsSoapFault(err) {
		t.Fatalf("want a connection error, got %v", err)
	}
	if _, err := fx.get("x"); err == nil {
		t.Fatal("datastore served during the restart")
	}
	time.Sleep(600 * time.Millisecond)
	err := fx.currentTime()
	if _, ok := soap.ToSoapFault(err).VimFault().(types.NotAuthenticated); !soap.IsSoapFault(err) || !ok {
		t.Fatalf("old session after the restart: %v", err)
	}
	fx.login(t)
	if after := vms(); after != before {
		t.Fatalf("%d VMs before, %d after", before, after)
	}

	fx.inject(t, `{"kind": "restart", "seconds": 30, "status": 503}`)
	if _, err := fx.get("x"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("want 503, got %v", err)
	}
	fx.control(t, http.MethodDelete, faultsPath, "") // ends it early
	fx.login(t)
}

func TestFaultControlEndpoint(t *testing.T) {
	fx := newFaultFixture(t)
	for _, bad := range []string{
		`{"kind": "nope"}`,
		`{"kind": "soap_fault"}`,
		`{"kind": "soap_fault", "method": "X", "fault": "Unknown"}`,
		`{"kind": "task_fail", "method": "CreateFolder"}`,
		`{"kind": "latency"}`,
		`{"kind": "http_error"}`,
		`{"kind": "restart"}`,
		`not json`,
	} {
		if status, _ := fx.control(t, http.MethodPost, faultsPath, bad); status != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, status)
		}
	}
	a := fx.inject(t, `{"kind": "latency", "ms": 1}`)
	b := fx.inject(t, `{"kind": "soap_fault", "method": "X"}`)
	if status, _ := fx.control(t, http.MethodDelete, fmt.Sprintf("%s/%d", faultsPath, a), ""); status != http.StatusNoContent {
		t.Fatal(status)
	}
	if status, _ := fx.control(t, http.MethodDelete, fmt.Sprintf("%s/%d", faultsPath, a), ""); status != http.StatusNotFound {
		t.Fatal(status)
	}
	if rules := fx.rules(t); len(rules) != 1 || rules[0].ID != b || rules[0].Times != 1 {
		t.Fatalf("listed %+v", rules)
	}
}
