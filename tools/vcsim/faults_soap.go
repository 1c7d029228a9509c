package main

// Rules on SOAP calls. soap_fault, task_fail and task_hang are matched in
// the Registry's method Handler, where the called object and the decoded
// request are known; latency and reset act on the HTTP request, before
// vcsim reads it. responseFix puts an injected message where pyVmomi
// reads it.

import (
	"bytes"
	"net/http"
	"regexp"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

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

func (f *faults) serveSOAP(next http.Handler, w http.ResponseWriter, r *http.Request) {
	body, ok := readSOAPBody(w, r)
	if !ok {
		return
	}
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
	serveRewritten(next, w, r, responseFix)
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
