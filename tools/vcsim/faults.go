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
//
// This file holds the rule set (arming, clearing, session expiry); the
// rest, by concern: faults_rules.go (a rule, and a posted one checked),
// faults_http.go (every request's way in, this endpoint), faults_soap.go
// (SOAP calls), faults_tasks.go (tasks taken over), faults_transfer.go
// (file transfers reset or cut) and faults_stall.go (stalled transfers).

import (
	"context"
	"log"
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
