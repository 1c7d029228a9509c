package main

// Guest operations as a guest OS would carry them out.
//
// Stock vcsim's RebootGuest changes nothing a client can see (the guest of
// a non-container VM has nothing to restart), and its ShutdownGuest always
// powers off at once. Here:
//
//   - RebootGuest takes VMware Tools down (guest.toolsRunningStatus
//     guestToolsNotRunning, guest.guestState "resetting") as a rebooting
//     guest does, and up again rebootDowntime later.
//   - A VM's guest can be made unresponsive: it accepts ShutdownGuest and
//     RebootGuest (Tools still run) but never acts on them, so clients'
//     time-outs and hard fall-backs can be tested.
//
//	POST   /vcdriver/guest  {"vm": "<instance uuid>", "unresponsive": true}
//	GET    /vcdriver/guest  {"guests": {"<instance uuid>": {"unresponsive",
//	                         "shutdownGuest", "rebootGuest"}}} (calls seen)
//	DELETE /vcdriver/guest  forgets every setting and count
//
// The calls are routed here by the Registry's method Handler hook, as the
// export calls are (nfc_export.go): the hook points them at guestService.

import (
	"net/http"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	guestOpsPath   = "/vcdriver/guest"
	rebootDowntime = 500 * time.Millisecond
)

type guestState struct {
	Unresponsive  bool `json:"unresponsive"`
	ShutdownGuest int  `json:"shutdownGuest"`
	RebootGuest   int  `json:"rebootGuest"`
}

type guestOps struct {
	mu     sync.Mutex
	guests map[string]*guestState // instance uuid -> state
}

type guestService struct {
	mo.ExtensibleManagedObject
	g *guestOps
}

var guestServiceRef = types.ManagedObjectReference{Type: "VcdriverGuestService", Value: "vcdriver-guest"}

func newGuestOps() *guestOps {
	return &guestOps{guests: map[string]*guestState{}}
}

// install routes the guest calls here; it must run before serving.
func (g *guestOps) install(m *simulator.Model) {
	service := &guestService{g: g}
	service.Self = guestServiceRef
	m.Map().Put(service)
	routeMethods(m, func(ctx *simulator.Context, method *simulator.Method) {
		if method.Name == "RebootGuest" || method.Name == "ShutdownGuest" {
			if _, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine); ok {
				method.This = guestServiceRef
			}
		}
	})
}

// seen counts a call and says whether the VM's guest ignores it.
func (g *guestOps) seen(vm *simulator.VirtualMachine, ctx *simulator.Context, call string) bool {
	var id string
	ctx.WithLock(vm, func() { id = vm.Config.InstanceUuid })
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.guests[id]
	if s == nil {
		s = &guestState{}
		g.guests[id] = s
	}
	if call == "ShutdownGuest" {
		s.ShutdownGuest++
	} else {
		s.RebootGuest++
	}
	return s.Unresponsive
}

func poweredOnFault(vm *simulator.VirtualMachine) *soap.Fault {
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		return nil
	}
	return simulator.Fault("", &types.InvalidPowerState{
		RequestedState: types.VirtualMachinePowerStatePoweredOn,
		ExistingState:  vm.Runtime.PowerState,
	})
}

// ShutdownGuest is vcsim's, unless the guest is unresponsive.
func (s *guestService) ShutdownGuest(ctx *simulator.Context, req *types.ShutdownGuest) soap.HasFault {
	body := new(methods.ShutdownGuestBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	if s.g.seen(vm, ctx, "ShutdownGuest") {
		ctx.WithLock(vm, func() { body.Fault_ = poweredOnFault(vm) })
		if body.Fault_ == nil {
			body.Res = new(types.ShutdownGuestResponse)
		}
		return body
	}
	var res soap.HasFault
	ctx.WithLock(vm, func() { res = vm.ShutdownGuest(ctx, req) })
	return res
}

// RebootGuest takes the guest's Tools down and brings them back.
func (s *guestService) RebootGuest(ctx *simulator.Context, req *types.RebootGuest) soap.HasFault {
	body := new(methods.RebootGuestBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	unresponsive := s.g.seen(vm, ctx, "RebootGuest")
	ctx.WithLock(vm, func() {
		if body.Fault_ = poweredOnFault(vm); body.Fault_ != nil {
			return
		}
		if vm.Guest.ToolsRunningStatus != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
			body.Fault_ = simulator.Fault("", new(types.ToolsUnavailable))
			return
		}
		body.Res = new(types.RebootGuestResponse)
		if !unresponsive {
			setTools(ctx, vm, false)
		}
	})
	if body.Res != nil && !unresponsive {
		go func() {
			time.Sleep(rebootDowntime)
			ctx.WithLock(vm, func() {
				if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
					setTools(ctx, vm, true)
				}
			})
		}()
	}
	return body
}

// setTools reports the guest's Tools up or down; the caller holds the lock.
func setTools(ctx *simulator.Context, vm *simulator.VirtualMachine, up bool) {
	status, running, state := types.VirtualMachineToolsStatusToolsNotRunning,
		types.VirtualMachineToolsRunningStatusGuestToolsNotRunning, "resetting"
	if up {
		status, running, state = types.VirtualMachineToolsStatusToolsOk,
			types.VirtualMachineToolsRunningStatusGuestToolsRunning, "running"
	}
	ctx.Map.Update(ctx, vm, []types.PropertyChange{
		{Name: "guest.toolsStatus", Val: status},
		{Name: "guest.toolsRunningStatus", Val: string(running)},
		{Name: "guest.guestState", Val: state},
		{Name: "summary.guest.toolsStatus", Val: status},
		{Name: "summary.guest.toolsRunningStatus", Val: string(running)},
	})
}

func (g *guestOps) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != guestOpsPath {
			next.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"guests": g.guests})
		case http.MethodPost:
			var req struct {
				VM           string `json:"vm"`
				Unresponsive bool   `json:"unresponsive"`
			}
			if err := decodeJSON(r, &req); err != nil || req.VM == "" {
				badRequest(w, `want {"vm": instance uuid, "unresponsive": bool}`)
				return
			}
			s := g.guests[req.VM]
			if s == nil {
				s = &guestState{}
				g.guests[req.VM] = s
			}
			s.Unresponsive = req.Unresponsive
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			g.guests = map[string]*guestState{}
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}
