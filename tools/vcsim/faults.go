package main

// Fault injection: one control endpoint for every fault a test can arm.
//
//	POST   /vcdriver/faults       a rule (JSON, below): 201 {"id": n, ...}
//	GET    /vcdriver/faults       {"faults": [rule, ...]}, each with "id",
//	                              "hits" (times it fired) and "seen"
//	                              (matching calls, skipped ones included);
//	                              stall rules also with "stalled" (their
//	                              transfers held now)
//	DELETE /vcdriver/faults       clears every rule (ends hangs, stalls, restarts)
//	DELETE /vcdriver/faults/<id>  clears one (404 if there is none)
//
// Every rule has a "kind". Rules that match calls also take "times" (how
// many times it fires; absent: 1, except latency: 0; 0: until cleared) and
// "skip" (let the first N matching calls through). A rule that has fired
// "times" times stays listed, with its hits, until cleared.
//
// soap_fault: the call is refused with a SOAP fault before it runs (no
// task exists, nothing changes).
//
//	{"kind": "soap_fault", "method": "CreateVM_Task", "fault": "NoDiskSpace",
//	 "message": "datastore full (simulated)", "arg": "nfs0"}
//	{"kind": "soap_fault", "method": "RelocateVM_Task", "object": "<uuid>",
//	 "fault": "MigrationNotReady", "message": "no compatible host"}
//	{"kind": "soap_fault", "drs_rule": "nova-servergroup-<id>",
//	 "message": "contradicts rule x"}
//
// "method" is the SOAP method name; "object" (optional) the called
// object's moref value ("vm-42"), a VM's instanceUuid or bios uuid, or the
// entity's name. "fault" is one of faultNames below (default SystemError);
// "message" becomes the SOAP faultstring (pyVmomi's msg; a failed task's
// localizedMessage) and, for MigrationNotReady and SystemError, also the
// fault's reason; "arg"
// fills the fault's main field (InvalidArgument.invalidProperty,
// NoDiskSpace.datastore, FileNotFound.file, ...). "drs_rule" matches only
// ReconfigureComputeResource_Task calls whose rulesSpec adds or edits a
// rule of that name (removals pass), as a vCenter refuses a rules spec; its
// fault defaults to InvalidArgument on "rulesSpec" (as the former
// /vcdriver/rule-faults endpoint did; /vcdriver/relocate-faults is now a
// MigrationNotReady soap_fault on RelocateVM_Task).
//
// task_fail, task_hang: the call is answered with a task, as usual.
//
//	{"kind": "task_fail", "method": "PowerOnVM_Task", "object": "<uuid>",
//	 "fault": "InsufficientResourcesFault", "message": "no memory",
//	 "progress": [20, 60], "step_ms": 100}
//	{"kind": "task_hang", "method": "CloneVM_Task", "progress": [40],
//	 "seconds": 30}
//
// task_fail: the task reports each "progress" percentage ("step_ms" apart,
// default 100) and then ends in error with the fault, without doing its
// work (the inventory is left as it was). task_hang: the task reports its
// progress, stays running for "seconds" (0: until the rule is cleared),
// then does its work and ends as usual. While it hangs, its object stays
// readable and callable (vcsim would hold the object's lock all along: see
// taskFaults.PutObject).
//
// latency: {"kind": "latency", "method": "RetrievePropertiesEx", "ms": 500}
// delays matching SOAP calls ("method" absent: every call) by "ms".
//
// reset: the TCP connection is closed without an answer (RST), for a SOAP
// method, or for file transfers when "http_method", "path" or "target"
// is given:
//
//	{"kind": "reset", "method": "PowerOffVM_Task"}
//	{"kind": "reset", "http_method": "PUT", "path": "disk-0.vmdk"}
//	{"kind": "reset", "target": "nfc", "http_method": "POST"}
//
// http_error: a file transfer (matching "http_method" and "path" if
// given) is answered with "status", or its connection is cut after
// "cut_after_bytes" bytes (of the request body for a PUT or POST, of the
// answer for a GET); a PUT or POST with both is answered with "status"
// after that many bytes, the rest unread (a datastore that fills up
// mid-upload). A status alone answers at once, the handler not run, the
// body read and dropped:
//
//	{"kind": "http_error", "http_method": "PUT", "status": 507}
//	{"kind": "http_error", "http_method": "PUT", "cut_after_bytes": 65536}
//	{"kind": "http_error", "http_method": "PUT", "status": 507, "cut_after_bytes": 65536}
//	{"kind": "http_error", "target": "nfc", "http_method": "POST", "status": 507}
//	{"kind": "http_error", "path": "/nfc/", "http_method": "POST", "cut_after_bytes": 65536}
//	{"kind": "http_error", "target": "nfc", "http_method": "GET", "cut_after_bytes": 1000}
//
// The transfers a reset, http_error or stall rule is for are its "target":
// "folder" (the default), datastore files (/folder/<path>?dsName=...,
// PUT and GET), or "nfc", NFC lease URLs (/nfc/<lease>/<file>: uploads
// into ImportVApp leases, PUT or POST; export leases, GET); a "path"
// beginning with "/nfc/" implies "nfc". A rule never fires for the other
// target's requests; "path" is a substring of the URL path either way
// (the lease's id, a file name such as "disk-0.vmdk"). http_method is
// PUT or GET for /folder/, PUT, POST or GET for /nfc/ (any case).
//
// Cuts differ by target. A /folder/ PUT never reaches the datastore: the
// first "cut_after_bytes" bytes are read and dropped, then the connection
// is reset (or "status" answered). An /nfc/ upload is handed to the lease
// with its body cut: the first "cut_after_bytes" bytes, then a read error
// ("connection cut after N bytes (injected fault <id>)", or "HTTP <status>
// after N bytes ..."), as when the client's connection breaks; the upload
// fails as such a one does (the file's state is error in GET
// /vcdriver/nfc, its bytes_received N, the lease stays ready for Abort),
// its answer is dropped and the connection reset (or "status" answered).
// A body no longer than "cut_after_bytes" reaches the handler whole; its
// answer is dropped all the same.
//
// stall: a file transfer (matched as for http_error, "target" included)
// stops after "cut_after_bytes" bytes (0: before the first) and stays in
// progress until the rule is cleared, so that a test can kill the client
// in the middle of it:
//
//	{"kind": "stall", "target": "nfc", "http_method": "POST", "cut_after_bytes": 65536}
//	{"kind": "stall", "http_method": "PUT", "path": "disk-0.vmdk", "cut_after_bytes": 0}
//	{"kind": "stall", "target": "nfc", "http_method": "GET", "cut_after_bytes": 1000}
//
// An upload (PUT, POST) gets its first "cut_after_bytes" bytes read, by
// the lease for /nfc/ (its bytes_received N), read and dropped for
// /folder/ (the datastore gets nothing), then not one more: the client
// blocks sending once the connection's buffers are full. A download (GET)
// gets the answer's headers and first "cut_after_bytes" bytes sent and
// flushed, then not one more. The stall ends when the rule is cleared
// (DELETE, one or all), when a download's client goes away (an upload's
// connection is not read while stalled, so a killed uploader is seen only
// when the rule is cleared), or when an /nfc/ upload's lease ends
// (Complete, Abort stop it as any upload). The transfer then fails as a
// cut one does: an /nfc/ upload's handler reads the error "upload stalled
// after N bytes, then cut (injected fault <id>)" (the file's state error,
// the lease still ready for Abort) and its answer is dropped; the
// connection is reset. No "status". "hits" counts the transfers that
// began stalling (times and skip as for the others), "stalled" those held
// now: a test polls GET /vcdriver/faults until hits is 1, then kills the
// client. A body or answer shorter than "cut_after_bytes" passes whole;
// the stall comes before the end all the same (the upload's answer, the
// end of the download's connection).
//
// session_expiry: {"kind": "session_expiry"} invalidates every session at
// once; each client's next call gets NotAuthenticated and it must log in
// again (as -session-idle-timeout does, for all sessions at once).
//
// restart: {"kind": "restart", "seconds": 5} (optional "status": 503)
// makes vCenter go away for that long: open connections are closed, every
// request (SOAP, /folder/, /nfc/, ...; not /vcdriver/) gets its connection reset
// (or the status), every session is invalidated, then service resumes with
// the same inventory. Clearing the rule ends it early.
//
// Why not the simulator's own FaultInjector (Service.FaultInjector()):
// its filters see only the called object, not the request, so the DRS
// rule-name match cannot be written with it; it only refuses calls (no
// failing or hanging tasks, no HTTP level faults); its rules have no ids
// (removal by index) and their hit counts are unexported; and it bumps
// them under a read lock, a data race with concurrent calls. One hook of
// ours, in Registry.Handler, covers every SOAP-level kind.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	faultsPath = "/vcdriver/faults"
	// faultKey marks an injected fault's faultMessage; responseFix copies
	// its message where vcsim leaves none (faultstring, localizedMessage).
	faultKey = "vcdriver.vcsim.fault"
)

const (
	kindSOAPFault     = "soap_fault"
	kindTaskFail      = "task_fail"
	kindTaskHang      = "task_hang"
	kindLatency       = "latency"
	kindReset         = "reset"
	kindHTTPError     = "http_error"
	kindStall         = "stall"
	kindSessionExpiry = "session_expiry"
	kindRestart       = "restart"
)

// faultRule is one armed fault, as posted and as listed.
type faultRule struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"`

	// What it matches.
	Method     string `json:"method,omitempty"`
	Object     string `json:"object,omitempty"`
	DRSRule    string `json:"drs_rule,omitempty"`
	HTTPMethod string `json:"http_method,omitempty"`
	Path       string `json:"path,omitempty"`
	Target     string `json:"target,omitempty"` // reset, http_error, stall: folder or nfc
	Times      int    `json:"times"`
	Skip       int    `json:"skip,omitempty"`

	// What it does.
	Fault         string  `json:"fault,omitempty"`
	Message       string  `json:"message,omitempty"`
	Arg           string  `json:"arg,omitempty"`
	Progress      []int32 `json:"progress,omitempty"`
	StepMS        int     `json:"step_ms,omitempty"`
	Seconds       float64 `json:"seconds,omitempty"`
	MS            int     `json:"ms,omitempty"`
	Status        int     `json:"status,omitempty"`
	CutAfterBytes int64   `json:"cut_after_bytes,omitempty"`

	Hits    int  `json:"hits"`
	Seen    int  `json:"seen"`
	Stalled *int `json:"stalled,omitempty"` // stall: transfers held now (set by listed)

	cut     bool          // cut_after_bytes was given (0 included)
	claimed int           // stall: transfers it fired for, not yet stalled
	stalls  int           // stall: transfers held now
	cleared chan struct{} // closed when the rule is cleared
	until   time.Time     // restart: end of the outage
}

// fire counts a matching call and tells whether the rule acts on it.
// A stall rule counts its hit only once the transfer stalls (stallGate),
// a claim meanwhile. The caller holds faults.mu.
func (r *faultRule) fire() bool {
	if r.Times > 0 && r.Hits+r.claimed >= r.Times {
		return false
	}
	r.Seen++
	if r.Seen <= r.Skip {
		return false
	}
	if r.Kind == kindStall {
		r.claimed++
	} else {
		r.Hits++
	}
	return true
}

// listed is the rule as listed. The caller holds faults.mu.
func (r *faultRule) listed() faultRule {
	out := *r
	if r.Kind == kindStall {
		n := r.stalls
		out.Stalled = &n
	}
	return out
}

// Targets of the file transfer rules.
const (
	targetFolder = "folder" // datastore files, /folder/
	targetNFC    = "nfc"    // NFC lease URLs, /nfc/
)

// transfer tells whether a rule is for file transfers (/folder/, /nfc/)
// rather than SOAP calls.
func (r *faultRule) transfer() bool {
	return r.Kind == kindHTTPError || r.Kind == kindStall ||
		(r.Kind == kindReset && (r.HTTPMethod != "" || r.Path != "" || r.Target != ""))
}

// matchesTransfer tells whether a transfer rule is for this request to
// target.
func (r *faultRule) matchesTransfer(target string, req *http.Request) bool {
	if r.Target != target {
		return false
	}
	if r.HTTPMethod != "" && !strings.EqualFold(r.HTTPMethod, req.Method) {
		return false
	}
	return r.Path == "" || strings.Contains(req.URL.Path, r.Path)
}

// faultNames are the faults a rule can name.
var faultNames = map[string]func(r *faultRule, this types.ManagedObjectReference) types.BaseMethodFault{
	"NotAuthenticated": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NotAuthenticated{NoPermission: types.NoPermission{Object: &this, PrivilegeId: "System.View"}}
	},
	"NoPermission": func(r *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NoPermission{Object: &this, PrivilegeId: or(r.Arg, "System.Modify")}
	},
	"InvalidState": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault { return &types.InvalidState{} },
	"InvalidPowerState": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InvalidPowerState{}
	},
	"InsufficientResourcesFault": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InsufficientResourcesFault{}
	},
	"NoDiskSpace": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NoDiskSpace{Datastore: r.Arg}
	},
	"HostCommunication": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.HostCommunication{}
	},
	"SystemError": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.SystemError{Reason: r.Message}
	},
	"TaskInProgress": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.TaskInProgress{Task: this}
	},
	"FileNotFound": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.FileNotFound{FileFault: types.FileFault{File: r.Arg}}
	},
	"InvalidArgument": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InvalidArgument{InvalidProperty: r.Arg}
	},
	"MigrationNotReady": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.MigrationNotReady{Reason: r.Message}
	},
	"DuplicateName": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.DuplicateName{Name: r.Arg}
	},
	"ManagedObjectNotFound": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.ManagedObjectNotFound{Obj: this}
	},
	"RequestCanceled": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault { return &types.RequestCanceled{} },
	"ResourceInUse": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.ResourceInUse{Name: r.Arg}
	},
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// methodFault builds the rule's fault for a call on this.
func (r *faultRule) methodFault(this types.ManagedObjectReference) types.BaseMethodFault {
	fault := faultNames[r.Fault](r, this)
	if r.Message != "" {
		f := fault.GetMethodFault()
		f.FaultMessage = append(f.FaultMessage, types.LocalizableMessage{Key: faultKey, Message: r.Message})
	}
	return fault
}

// faults holds the rules; it is the HTTP middleware, the Registry.Handler
// hook and the Registry handler (tasks) of every kind.
type faults struct {
	srv *simulator.Server
	m   *simulator.Model

	mu      sync.Mutex
	rules   []*faultRule
	nextID  int
	pending map[types.ManagedObjectReference][]*pendingTask // task rules fired, task not yet created
	marked  atomic.Bool                                     // a rule with a message was ever armed
	lockID  atomic.Int64
}

func newFaults(srv *simulator.Server, m *simulator.Model) *faults {
	return &faults{srv: srv, m: m, nextID: 1, pending: map[types.ManagedObjectReference][]*pendingTask{}}
}

// install hooks the SOAP-level rules into the Registry's method Handler
// and its object handlers; it must run before serving.
func (f *faults) install(m *simulator.Model) {
	next := m.Map().Handler
	m.Map().Handler = func(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		if fault := f.check(ctx, method); fault != nil {
			return nil, fault
		}
		if next != nil {
			return next(ctx, method)
		}
		return nil, nil
	}
	m.Map().AddHandler((*taskFaults)(f))
}

// check runs the SOAP-level rules for one call: it returns the fault of a
// soap_fault rule, or notes that the task this call creates must fail or
// hang.
func (f *faults) check(ctx *simulator.Context, method *simulator.Method) types.BaseMethodFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		switch r.Kind {
		case kindSOAPFault, kindTaskFail, kindTaskHang:
		default:
			continue
		}
		if r.Method != method.Name || !matchesObject(ctx, r.Object, method.This) {
			continue
		}
		if r.DRSRule != "" && !addsDRSRule(method, r.DRSRule) {
			continue
		}
		if !r.fire() {
			continue
		}
		if r.Kind == kindSOAPFault {
			return r.methodFault(method.This)
		}
		f.pending[method.This] = append(f.pending[method.This], &pendingTask{rule: r, ctx: ctx, at: time.Now()})
		return nil
	}
	return nil
}

// matchesObject tells whether the called object is the one a rule names.
func matchesObject(ctx *simulator.Context, want string, this types.ManagedObjectReference) bool {
	if want == "" || want == this.Value {
		return true
	}
	obj := ctx.Map.Get(this)
	if vm, ok := obj.(*simulator.VirtualMachine); ok && vm.Config != nil &&
		(vm.Config.InstanceUuid == want || vm.Config.Uuid == want) {
		return true
	}
	if e, ok := obj.(mo.Entity); ok {
		return e.Entity().Name == want
	}
	return false
}

// addsDRSRule tells whether a ReconfigureComputeResource_Task adds or
// edits the named cluster rule.
func addsDRSRule(method *simulator.Method, name string) bool {
	req, ok := method.Body.(*types.ReconfigureComputeResource_Task)
	if !ok {
		return false
	}
	spec, ok := req.Spec.(*types.ClusterConfigSpecEx)
	if !ok {
		return false
	}
	for _, rs := range spec.RulesSpec {
		if rs.Operation == types.ArrayUpdateOperationRemove || rs.Info == nil {
			continue
		}
		if rs.Info.GetClusterRuleInfo().Name == name {
			return true
		}
	}
	return false
}

// --- tasks that fail or hang -------------------------------------------

type pendingTask struct {
	rule *faultRule
	ctx  *simulator.Context // the call's: the task runs on its behalf
	at   time.Time
}

// taskFaults is faults as a Registry handler: it sees each Task put in the
// Registry by Task.Run, synchronously, before the task's goroutine starts.
type taskFaults faults

func (*taskFaults) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VcdriverFaults", Value: "taskFaults"}
}

func (*taskFaults) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}

func (*taskFaults) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

// PutObject takes over a task whose call a task_fail or task_hang rule
// fired for: the task's entity is the called object (vcsim's tasks are
// made on method.This). The oldest pending entry of that object is taken;
// one older than 10 s belonged to a call that made no task.
//
// Task.Run holds the entity's lock while the task runs, which would block
// every call on the object and every PropertyCollector read of it during
// a hang. So the task gets a private lock object as entity for as long as
// Run needs it; the wrapped Execute gives the real entity back and takes
// its lock (on behalf of the call, as Run does) only around the real work.
func (t *taskFaults) PutObject(_ *simulator.Context, obj mo.Reference) {
	task, ok := obj.(*simulator.Task)
	if !ok || task.Info.Entity == nil {
		return
	}
	f := (*faults)(t)
	entity := *task.Info.Entity
	f.mu.Lock()
	var p *pendingTask
	queue := f.pending[entity]
	for len(queue) > 0 && p == nil {
		if time.Since(queue[0].at) < 10*time.Second {
			p = queue[0]
		}
		queue = queue[1:]
	}
	if len(queue) == 0 {
		delete(f.pending, entity)
	} else {
		f.pending[entity] = queue
	}
	f.mu.Unlock()
	if p == nil {
		return
	}
	lock := types.ManagedObjectReference{Type: "VcdriverTaskLock", Value: strconv.FormatInt(f.lockID.Add(1), 10)}
	task.Info.Entity = &lock
	run := task.Execute
	task.Execute = func(task *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		own := &simulator.Context{Map: f.m.Map(), Context: context.Background()}
		f.m.Map().AtomicUpdate(own, task, []types.PropertyChange{{Name: "info.entity", Val: entity}})
		step := time.Duration(p.rule.StepMS) * time.Millisecond
		if step <= 0 {
			step = 100 * time.Millisecond
		}
		for _, pc := range p.rule.Progress {
			f.m.Map().AtomicUpdate(own, task, []types.PropertyChange{{Name: "info.progress", Val: pc}})
			time.Sleep(step)
		}
		if p.rule.Kind == kindTaskFail {
			return nil, p.rule.methodFault(entity)
		}
		var timeout <-chan time.Time
		if p.rule.Seconds > 0 {
			timeout = time.After(time.Duration(p.rule.Seconds * float64(time.Second)))
		}
		select {
		case <-timeout:
		case <-p.rule.cleared:
		}
		unlock := f.m.Map().AcquireLock(p.ctx, entity)
		defer unlock()
		return run(task)
	}
}

// --- HTTP --------------------------------------------------------------

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == faultsPath || strings.HasPrefix(r.URL.Path, faultsPath+"/"):
			f.serve(w, r)
			return
		case strings.HasPrefix(r.URL.Path, "/vcdriver/"):
			next.ServeHTTP(w, r)
			return
		}
		if rule := f.restarting(); rule != nil {
			if rule.Status != 0 {
				w.WriteHeader(rule.Status)
			} else {
				resetConn(w)
			}
			return
		}
		if r.Method == http.MethodPost && isSDKPath(r.URL.Path) {
			f.serveSOAP(next, w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, folderPrefix) {
			f.serveTransfer(targetFolder, next, w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, nfcPathPrefix) {
			f.serveTransfer(targetNFC, next, w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// restarting returns the restart rule in force, counting the request.
func (f *faults) restarting() *faultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.Kind == kindRestart && time.Now().Before(r.until) {
			r.Hits++
			return r
		}
	}
	return nil
}

func (f *faults) serveSOAP(next http.Handler, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	method := soapMethod(body)

	var delay time.Duration
	reset := false
	f.mu.Lock()
	for _, rule := range f.rules {
		switch {
		case rule.Kind == kindLatency && (rule.Method == "" || rule.Method == method):
			if rule.fire() {
				delay += time.Duration(rule.MS) * time.Millisecond
			}
		case rule.Kind == kindReset && !rule.transfer() && rule.Method == method:
			if !reset && rule.fire() {
				reset = true
			}
		}
	}
	f.mu.Unlock()
	time.Sleep(delay)
	if reset {
		resetConn(w)
		return
	}
	if !f.marked.Load() {
		next.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	next.ServeHTTP(rec, r)
	out := responseFix(rec.body.Bytes())
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.status)
	_, _ = w.Write(out)
}

// keyedMessage is an injected fault's faultMessage, as encoded.
const keyedMessage = `<faultMessage[^>]*>\s*<key>` + faultKey + `</key>\s*<message>([^<]*)</message>\s*</faultMessage>`

var (
	emptyFaultstringRE = regexp.MustCompile(`(?s)<faultstring>\s*</faultstring>(.*?)` + keyedMessage)
	typeMessageRE      = regexp.MustCompile(`(?s)` + keyedMessage + `(.*?<localizedMessage>)\*types\.\w+(</localizedMessage>)`)
)

// responseFix moves an injected fault's message (its faultMessage, with
// faultKey) to where a vCenter puts it and vcsim leaves none: the
// faultstring of a SOAP fault (empty when Registry.Handler refuses a call)
// or the localizedMessage of a task's error (vcsim writes the Go type name
// there). pyVmomi reads either as the fault's msg.
func responseFix(body []byte) []byte {
	if !bytes.Contains(body, []byte(faultKey)) {
		return body
	}
	body = emptyFaultstringRE.ReplaceAll(body, []byte("<faultstring>$2</faultstring>$1"))
	return typeMessageRE.ReplaceAll(body, []byte("$2$1$3"))
}

// serveTransfer applies the first transfer rule of target that fires for
// a /folder/ or /nfc/ request.
func (f *faults) serveTransfer(target string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	var act *faultRule
	f.mu.Lock()
	for _, rule := range f.rules {
		if rule.transfer() && rule.matchesTransfer(target, r) && rule.fire() {
			act = rule
			break
		}
	}
	f.mu.Unlock()
	switch {
	case act == nil:
		next.ServeHTTP(w, r)
	case act.Kind == kindReset:
		resetConn(w)
	case act.Kind == kindStall:
		f.stall(act, target, next, w, r)
	case act.cut && r.Method == http.MethodGet:
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: act.CutAfterBytes}, r)
	case act.cut && target == targetNFC:
		f.cutUpload(act, next, w, r)
	case act.cut && act.Status != 0:
		_, _ = io.CopyN(io.Discard, r.Body, act.CutAfterBytes)
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
	case act.cut:
		_, _ = io.CopyN(io.Discard, r.Body, act.CutAfterBytes)
		resetConn(w)
	default:
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
	}
}

// cutUpload hands an upload to its handler with the body cut after the
// rule's cut_after_bytes, drops the handler's answer, then resets the
// connection or answers the rule's status (the rest of the body unread).
func (f *faults) cutUpload(act *faultRule, next http.Handler, w http.ResponseWriter, r *http.Request) {
	why := fmt.Errorf("connection cut after %d bytes (injected fault %d)", act.CutAfterBytes, act.ID)
	if act.Status != 0 {
		why = fmt.Errorf("HTTP %d after %d bytes (injected fault %d)", act.Status, act.CutAfterBytes, act.ID)
	}
	r.Body = &cutBody{ReadCloser: r.Body, left: act.CutAfterBytes, err: why}
	next.ServeHTTP(&mutedWriter{w: w, header: http.Header{}}, r)
	if act.Status == 0 {
		resetConn(w)
		return
	}
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
}

// cutBody lets the first left bytes of a request body through, then fails
// every read with err, as a body whose connection broke does.
type cutBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.ReadCloser.Read(b)
	c.left -= int64(n)
	return n, err
}

// mutedWriter takes a handler's answer and drops it. The handler can still
// set the connection's read deadline (nfc_import.go stops a transfer so);
// nothing else of the connection is reachable, so nothing goes out.
type mutedWriter struct {
	w      http.ResponseWriter
	header http.Header
	gate   *stallGate // a stalled upload's: a read deadline ends its stall too
}

func (m *mutedWriter) Header() http.Header         { return m.header }
func (m *mutedWriter) WriteHeader(int)             {}
func (m *mutedWriter) Write(b []byte) (int, error) { return len(b), nil }

func (m *mutedWriter) SetReadDeadline(t time.Time) error {
	if m.gate != nil {
		m.gate.setReadDeadline(t)
	}
	return http.NewResponseController(m.w).SetReadDeadline(t)
}

// cutWriter passes on the first left bytes of a response, then resets the
// connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
	done bool
}

var errCut = errors.New("connection cut by an injected fault")

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.done {
		return 0, errCut
	}
	if int64(len(b)) <= c.left {
		c.left -= int64(len(b))
		return c.ResponseWriter.Write(b)
	}
	n, _ := c.ResponseWriter.Write(b[:c.left])
	c.done = true
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	resetConn(c.ResponseWriter)
	return n, errCut
}

// --- stalls ------------------------------------------------------------

// stall holds a transfer a stall rule fired for: an upload's body (its
// handler's for /nfc/, dropped for /folder/) or a download's answer stops
// after the rule's cut_after_bytes until the stall ends (stallGate), then
// the connection is reset.
func (f *faults) stall(act *faultRule, target string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	g := newStallGate(f, act, r)
	defer g.release()
	switch {
	case r.Method == http.MethodGet:
		sw := &stallWriter{ResponseWriter: w, left: act.CutAfterBytes, gate: g}
		next.ServeHTTP(sw, r)
		if sw.done {
			return
		}
		// An answer no longer than cut_after_bytes: it went out whole, the
		// end of the connection is held.
		_ = http.NewResponseController(w).Flush()
	case target == targetNFC:
		r.Body = &stallBody{ReadCloser: r.Body, left: act.CutAfterBytes, gate: g}
		next.ServeHTTP(&mutedWriter{w: w, header: http.Header{}, gate: g}, r)
	default:
		if _, err := io.CopyN(io.Discard, r.Body, act.CutAfterBytes); err != nil && err != io.EOF {
			g.lost()
		}
	}
	g.wait() // at once if the transfer stalled already, or its client is gone
	resetConn(w)
}

// stallGate is one transfer of a stall rule: it counts the rule's hit and
// holds the transfer (wait) until the rule is cleared, the client goes
// away or the handler's read deadline passes.
type stallGate struct {
	f      *faults
	rule   *faultRule
	method string
	path   string
	gone   <-chan struct{} // the request's context: its client went away

	mu       sync.Mutex
	state    int // gateNew, gateHeld, gateOver
	n        int64
	timer    *time.Timer
	expired  chan struct{} // closed once a read deadline set by the handler passed
	expireMu sync.Once
}

const (
	gateNew  = iota // not stalled yet
	gateHeld        // stalled now
	gateOver        // stalled and let go, or never to be
)

func newStallGate(f *faults, rule *faultRule, r *http.Request) *stallGate {
	return &stallGate{f: f, rule: rule, method: r.Method, path: r.URL.Path, gone: r.Context().Done(),
		expired: make(chan struct{})}
}

// wait stalls the transfer after n bytes, once: it returns when the rule
// is cleared, the client is gone or the read deadline passed (at once if
// it has stalled before, or lost was called).
func (g *stallGate) wait() {
	g.mu.Lock()
	if g.state != gateNew {
		g.mu.Unlock()
		return
	}
	g.state = gateHeld
	g.mu.Unlock()
	g.f.mu.Lock()
	g.rule.claimed--
	g.rule.Hits++
	g.rule.stalls++
	g.f.mu.Unlock()
	log.Printf("faults: %s %s stalled after %d bytes (injected fault %d)", g.method, g.path, g.rule.CutAfterBytes, g.rule.ID)
	select {
	case <-g.rule.cleared:
	case <-g.gone:
	case <-g.expired:
	}
	g.f.mu.Lock()
	g.rule.stalls--
	g.f.mu.Unlock()
	g.mu.Lock()
	g.state = gateOver
	g.mu.Unlock()
}

// lost notes that the client went away before the stall: there is none.
func (g *stallGate) lost() { g.release() }

// release gives up the rule's claim if the transfer never stalled.
func (g *stallGate) release() {
	g.mu.Lock()
	never := g.state == gateNew
	g.state = gateOver
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	if never {
		g.f.mu.Lock()
		g.rule.claimed--
		g.f.mu.Unlock()
	}
}

// setReadDeadline arms the end of the stall at t (zero: none), as the
// handler's read deadline ends any read of its connection (an NFC lease
// that ends stops its uploads so).
func (g *stallGate) setReadDeadline(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if !t.IsZero() {
		g.timer = time.AfterFunc(time.Until(t), func() { g.expireMu.Do(func() { close(g.expired) }) })
	}
}

// err is what a stalled upload's handler reads once the stall ends.
func (g *stallGate) err() error {
	return fmt.Errorf("upload stalled after %d bytes, then cut (injected fault %d)", g.rule.CutAfterBytes, g.rule.ID)
}

// stallBody lets the first left bytes of a request body through; the next
// read stalls, then fails.
type stallBody struct {
	io.ReadCloser
	left int64
	gate *stallGate
	err  error
}

func (s *stallBody) Read(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left <= 0 {
		s.gate.wait()
		s.err = s.gate.err()
		return 0, s.err
	}
	if int64(len(b)) > s.left {
		b = b[:s.left]
	}
	n, err := s.ReadCloser.Read(b)
	s.left -= int64(n)
	if err != nil && err != io.EOF {
		s.gate.lost() // the connection broke before the stall
	}
	return n, err
}

// stallWriter passes on the first left bytes of a response, flushes them,
// stalls, then resets the connection.
type stallWriter struct {
	http.ResponseWriter
	left int64
	gate *stallGate
	done bool
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if s.done {
		return 0, errCut
	}
	if int64(len(b)) <= s.left {
		s.left -= int64(len(b))
		n, err := s.ResponseWriter.Write(b)
		if err != nil {
			s.gate.lost()
		}
		return n, err
	}
	s.done = true
	n, err := s.ResponseWriter.Write(b[:s.left])
	if err == nil {
		err = http.NewResponseController(s.ResponseWriter).Flush()
	}
	if err != nil {
		s.gate.lost()
	}
	s.gate.wait()
	resetConn(s.ResponseWriter)
	return n, errCut
}

// Unwrap lets a handler's ResponseController reach the connection.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// resetConn closes the request's connection at once, without an answer
// (or after what was flushed): the client sees a connection reset.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // RST rather than FIN
	}
	_ = raw.Close()
}

// --- the control endpoint ----------------------------------------------

func (f *faults) serve(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, faultsPath), "/")
	switch {
	case r.Method == http.MethodGet && id == "":
		f.mu.Lock()
		list := make([]faultRule, 0, len(f.rules))
		for _, rule := range f.rules {
			list = append(list, rule.listed())
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"faults": list})
	case r.Method == http.MethodPost && id == "":
		rule, err := decodeRule(r.Body)
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		f.add(rule)
		f.mu.Lock()
		out := rule.listed()
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, out)
	case r.Method == http.MethodDelete && id == "":
		f.clear(0)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		n, err := strconv.Atoi(id)
		if err != nil || !f.clear(n) {
			http.Error(w, "no fault "+id, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// decodeRule reads and checks a posted rule, filling in defaults.
func decodeRule(body io.Reader) (*faultRule, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	rule := &faultRule{}
	var given struct {
		Times         *int   `json:"times"`
		CutAfterBytes *int64 `json:"cut_after_bytes"`
	}
	if err := json.Unmarshal(raw, rule); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &given); err != nil {
		return nil, err
	}
	rule.Hits, rule.Seen = 0, 0
	if given.Times == nil && rule.Kind != kindLatency {
		rule.Times = 1
	}
	rule.cut = given.CutAfterBytes != nil
	bad := func(format string, a ...any) (*faultRule, error) {
		return nil, fmt.Errorf("%s rule: "+format, append([]any{rule.Kind}, a...)...)
	}
	if rule.Times < 0 || rule.Skip < 0 || rule.Seconds < 0 || rule.MS < 0 || rule.CutAfterBytes < 0 {
		return bad("times, skip, seconds, ms and cut_after_bytes must be >= 0")
	}
	switch rule.Kind {
	case kindSOAPFault, kindTaskFail, kindTaskHang:
		if rule.DRSRule != "" && rule.Method == "" {
			rule.Method = "ReconfigureComputeResource_Task"
		}
		if rule.Method == "" {
			return bad("needs a method")
		}
		if rule.Kind != kindSOAPFault && !strings.HasSuffix(rule.Method, "_Task") {
			return bad("needs a *_Task method")
		}
		if rule.Fault == "" {
			rule.Fault = "SystemError"
			if rule.DRSRule != "" {
				rule.Fault, rule.Arg = "InvalidArgument", or(rule.Arg, "rulesSpec")
			}
		}
		if _, ok := faultNames[rule.Fault]; !ok && rule.Kind != kindTaskHang {
			names := make([]string, 0, len(faultNames))
			for n := range faultNames {
				names = append(names, n)
			}
			sort.Strings(names)
			return bad("unknown fault %q (one of %s)", rule.Fault, strings.Join(names, ", "))
		}
		for _, p := range rule.Progress {
			if p < 0 || p > 100 {
				return bad("progress is percentages")
			}
		}
	case kindLatency:
		if rule.MS <= 0 {
			return bad("needs ms > 0")
		}
	case kindReset:
		if rule.Method == "" && !rule.transfer() {
			return bad("needs a SOAP method, or http_method, path or target for file transfers")
		}
		if rule.transfer() {
			if err := transferTarget(rule); err != nil {
				return bad("%v", err)
			}
		}
	case kindHTTPError:
		if (!rule.cut || rule.Status != 0) && (rule.Status < 400 || rule.Status > 599) {
			return bad("needs a status (400-599) or cut_after_bytes")
		}
		if err := transferTarget(rule); err != nil {
			return bad("%v", err)
		}
		if err := transferMethod(rule); err != nil {
			return bad("%v", err)
		}
	case kindStall:
		if !rule.cut {
			return bad("needs cut_after_bytes (0: before the first byte)")
		}
		if rule.Status != 0 {
			return bad("takes no status (a stalled transfer ends cut)")
		}
		if err := transferTarget(rule); err != nil {
			return bad("%v", err)
		}
		if err := transferMethod(rule); err != nil {
			return bad("%v", err)
		}
	case kindSessionExpiry:
	case kindRestart:
		if rule.Seconds <= 0 {
			return bad("needs seconds > 0")
		}
		if rule.Status != 0 && (rule.Status < 400 || rule.Status > 599) {
			return bad("status is 400-599 (or absent: connections reset)")
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", rule.Kind)
	}
	return rule, nil
}

// transferTarget checks a transfer rule's target, filling it in (nfc for
// a path under /nfc/, else folder), and upper-cases its http_method.
func transferTarget(rule *faultRule) error {
	rule.HTTPMethod = strings.ToUpper(rule.HTTPMethod)
	switch rule.Target {
	case "":
		rule.Target = targetFolder
		if strings.HasPrefix(rule.Path, nfcPathPrefix) {
			rule.Target = targetNFC
		}
	case targetFolder, targetNFC:
	default:
		return fmt.Errorf("target is %q or %q", targetFolder, targetNFC)
	}
	if (rule.Target == targetFolder && strings.HasPrefix(rule.Path, nfcPathPrefix)) ||
		(rule.Target == targetNFC && strings.HasPrefix(rule.Path, folderPrefix)) {
		return fmt.Errorf("path %q is not under /%s/", rule.Path, rule.Target)
	}
	return nil
}

// transferMethod checks a transfer rule's http_method (upper-cased by
// transferTarget) against its target.
func transferMethod(rule *faultRule) error {
	switch rule.HTTPMethod {
	case "", http.MethodPut, http.MethodGet:
	case http.MethodPost:
		if rule.Target != targetNFC {
			return errors.New("http_method is PUT or GET for /folder/ (POST is for target nfc)")
		}
	default:
		return errors.New("http_method is PUT or GET, or POST for target nfc")
	}
	return nil
}

// add arms a rule; session_expiry and restart act at once.
func (f *faults) add(rule *faultRule) {
	rule.cleared = make(chan struct{})
	f.mu.Lock()
	rule.ID = f.nextID
	f.nextID++
	if rule.Message != "" && (rule.Kind == kindSOAPFault || rule.Kind == kindTaskFail) {
		f.marked.Store(true)
	}
	if rule.Kind == kindRestart {
		rule.until = time.Now().Add(time.Duration(rule.Seconds * float64(time.Second)))
	}
	f.rules = append(f.rules, rule)
	f.mu.Unlock()

	switch rule.Kind {
	case kindSessionExpiry:
		n := f.expireSessions()
		f.mu.Lock()
		rule.Hits = n
		f.mu.Unlock()
	case kindRestart:
		f.expireSessions()
		go func() {
			// Open connections (long polls, kept-alive clients) go too,
			// once this answer is out.
			time.Sleep(50 * time.Millisecond)
			if f.srv != nil {
				f.srv.CloseClientConnections()
			}
			select {
			case <-time.After(time.Until(rule.until)):
			case <-rule.cleared:
			}
			f.expireSessions() // any login that slipped in as it began
		}()
	}
}

// clear removes rule id (0: every rule), ending its hangs and outages.
func (f *faults) clear(id int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept, found := f.rules[:0], false
	for _, r := range f.rules {
		if id == 0 || r.ID == id {
			found = true
			r.until = time.Time{}
			close(r.cleared)
			continue
		}
		kept = append(kept, r)
	}
	for i := len(kept); i < len(f.rules); i++ {
		f.rules[i] = nil
	}
	f.rules = kept
	return found
}

// expireSessions terminates every client session through the in-process
// client (whose own session is not in the SessionManager's list), as an
// administrator would; it returns how many it ended.
func (f *faults) expireSessions() int {
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, f.m.Service)
	if err != nil {
		log.Printf("faults: in-process client: %v", err)
		return 0
	}
	ref := *c.ServiceContent.SessionManager
	var sm mo.SessionManager
	if err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"sessionList"}, &sm); err != nil {
		log.Printf("faults: session list: %v", err)
		return 0
	}
	n := 0
	for _, s := range sm.SessionList {
		// One at a time: a session that expired meanwhile is NotFound.
		req := types.TerminateSession{This: ref, SessionId: []string{s.Key}}
		if _, err := methods.TerminateSession(ctx, c, &req); err == nil {
			n++
		}
	}
	return n
}
