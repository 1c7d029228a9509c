package main

// Refusals of cluster (DRS) rules, on demand.
//
// vcsim accepts any rule a ReconfigureComputeResource_Task brings; a
// vCenter refuses some (two enabled VM-VM rules that contradict each other,
// a rule naming a VM outside the cluster, ...). So that tests can see how a
// client reports a refused rule, a refusal is armed over HTTP:
//
//	POST   /vcdriver/rule-faults  {"rule": "<rule name>", "message": "...", "times": 1}
//	GET    /vcdriver/rule-faults  {"faults": [{"rule", "message", "times", "hits"}]}
//	DELETE /vcdriver/rule-faults  disarms every refusal
//
// The next ReconfigureComputeResource_Task (times: that many; 0: until
// disarmed) whose rulesSpec adds or edits a rule of that name is refused
// as the call is made, before any task exists, with InvalidArgument
// (invalidProperty "rulesSpec", the message as its faultMessage); the
// cluster is left as it was. Removing the rule is never refused.

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const ruleFaultsPath = "/vcdriver/rule-faults"

type ruleFault struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Times   int    `json:"times"`
	Hits    int    `json:"hits"`
}

type ruleFaults struct {
	mu     sync.Mutex
	faults []*ruleFault
}

func newRuleFaults() *ruleFaults {
	return &ruleFaults{}
}

// install hooks the refusals into the Registry's method Handler; it must
// run before serving.
func (f *ruleFaults) install(m *simulator.Model) {
	next := m.Map().Handler
	m.Map().Handler = func(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		if fault := f.check(method); fault != nil {
			return nil, fault
		}
		if next != nil {
			return next(ctx, method)
		}
		return nil, nil
	}
}

// check returns the fault refusing this call, if one is armed for it.
func (f *ruleFaults) check(method *simulator.Method) types.BaseMethodFault {
	if method.Name != "ReconfigureComputeResource_Task" {
		return nil
	}
	req, ok := method.Body.(*types.ReconfigureComputeResource_Task)
	if !ok {
		return nil
	}
	spec, ok := req.Spec.(*types.ClusterConfigSpecEx)
	if !ok {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rs := range spec.RulesSpec {
		if rs.Operation == types.ArrayUpdateOperationRemove || rs.Info == nil {
			continue
		}
		name := rs.Info.GetClusterRuleInfo().Name
		for _, armed := range f.faults {
			if armed.Rule != name || (armed.Times > 0 && armed.Hits >= armed.Times) {
				continue
			}
			armed.Hits++
			fault := &types.InvalidArgument{InvalidProperty: "rulesSpec"}
			fault.FaultMessage = []types.LocalizableMessage{{
				Key:     "vcdriver.vcsim.ruleRefused",
				Message: armed.Message,
			}}
			return fault
		}
	}
	return nil
}

func (f *ruleFaults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ruleFaultsPath {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"faults": f.faults})
		case http.MethodPost:
			armed := &ruleFault{Times: 1}
			if err := json.NewDecoder(r.Body).Decode(armed); err != nil || armed.Rule == "" || armed.Times < 0 {
				http.Error(w, "want {\"rule\": name, \"message\": text, \"times\": n >= 0}", http.StatusBadRequest)
				return
			}
			armed.Hits = 0
			f.faults = append(f.faults, armed)
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			f.faults = nil
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}
