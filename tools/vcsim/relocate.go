package main

// RelocateVM_Task: the VM listed under its new host, and failed vMotions
// on demand.
//
// vcsim's RelocateVM_Task changes the VM's host, pool and datastore
// properties (no file moves) but leaves the VM in its old host's and
// pool's "vm" lists, where a client reading VMs by traversal from hosts
// still finds it: the VM is moved to the new host's and pool's lists as
// the call is made.
//
// vcsim's RelocateVM_Task always succeeds. A vCenter may refuse one (no
// compatible host, a network missing at the destination, ...). So that
// tests can see a client roll back, a refusal is armed over HTTP:
//
//	POST   /vcdriver/relocate-faults  {"vm": "<instanceUuid or moref>", "message": "...", "times": 1}
//	GET    /vcdriver/relocate-faults  {"faults": [{"vm", "message", "times", "hits"}]}
//	DELETE /vcdriver/relocate-faults  disarms every refusal
//
// The next RelocateVM_Task of that VM ("" or absent: any VM; times: that
// many, 0: until disarmed) is refused as the call is made, before any task
// exists, with MigrationNotReady (the message as its reason); the VM stays
// where it was, as it does when vCenter fails a vMotion.

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const relocateFaultsPath = "/vcdriver/relocate-faults"

type relocateFault struct {
	VM      string `json:"vm"`
	Message string `json:"message"`
	Times   int    `json:"times"`
	Hits    int    `json:"hits"`
}

type relocateFaults struct {
	mu     sync.Mutex
	faults []*relocateFault
}

func newRelocateFaults() *relocateFaults {
	return &relocateFaults{}
}

// install hooks the refusals into the Registry's method Handler; it must
// run before serving.
func (f *relocateFaults) install(m *simulator.Model) {
	next := m.Map().Handler
	m.Map().Handler = func(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		if fault := f.check(ctx, method); fault != nil {
			return nil, fault
		}
		relistRelocated(ctx, method)
		if next != nil {
			return next(ctx, method)
		}
		return nil, nil
	}
}

// check returns the fault refusing this call, if one is armed for it.
func (f *relocateFaults) check(ctx *simulator.Context, method *simulator.Method) types.BaseMethodFault {
	if method.Name != "RelocateVM_Task" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.faults) == 0 {
		return nil
	}
	uuid := ""
	if vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine); ok && vm.Config != nil {
		uuid = vm.Config.InstanceUuid
	}
	for _, armed := range f.faults {
		if armed.VM != "" && armed.VM != uuid && armed.VM != method.This.Value {
			continue
		}
		if armed.Times > 0 && armed.Hits >= armed.Times {
			continue
		}
		armed.Hits++
		return &types.MigrationNotReady{Reason: armed.Message}
	}
	return nil
}

func (f *relocateFaults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != relocateFaultsPath {
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
			armed := &relocateFault{Times: 1}
			if err := json.NewDecoder(r.Body).Decode(armed); err != nil || armed.Times < 0 {
				http.Error(w, "want {\"vm\": uuid, \"message\": text, \"times\": n >= 0}", http.StatusBadRequest)
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

// relistRelocated moves a VM being relocated to its new host's and pool's
// "vm" lists (vcsim leaves it in the old ones).
func relistRelocated(ctx *simulator.Context, method *simulator.Method) {
	if method.Name != "RelocateVM_Task" {
		return
	}
	req, ok := method.Body.(*types.RelocateVM_Task)
	if !ok {
		return
	}
	vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	if ref := req.Spec.Host; ref != nil && vm.Runtime.Host != nil && *vm.Runtime.Host != *ref {
		if old, ok := ctx.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
			ctx.Map.RemoveReference(ctx, old, &old.Vm, vm.Self)
		}
		if host, ok := ctx.Map.Get(*ref).(*simulator.HostSystem); ok {
			ctx.Map.AddReference(ctx, host, &host.Vm, vm.Self)
		}
	}
	if ref := req.Spec.Pool; ref != nil && vm.ResourcePool != nil && *vm.ResourcePool != *ref {
		if old, ok := ctx.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
			ctx.Map.RemoveReference(ctx, old, &old.Vm, vm.Self)
		}
		if pool, ok := ctx.Map.Get(*ref).(*simulator.ResourcePool); ok {
			ctx.Map.AddReference(ctx, pool, &pool.Vm, vm.Self)
		}
	}
}
