package main

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// consoleTickets serves VirtualMachine.AcquireTicket, which vcsim lacks:
// the ticket a console client (WebMKS, MKS) presents to the VM's ESX host.
// Nothing listens at the host and port it names; the ticket is random.
type consoleTickets struct{}

// ticketService is where AcquireTicket calls are routed, as ExportVm's are
// in nfc_export.go (the handler hook can only retarget a call).
type ticketService struct {
	mo.ExtensibleManagedObject
}

var ticketServiceRef = types.ManagedObjectReference{Type: "VcdriverTicketService", Value: "vcdriver-tickets"}

func newConsoleTickets() *consoleTickets { return &consoleTickets{} }

// install routes AcquireTicket here; it must run before serving.
func (t *consoleTickets) install(m *simulator.Model) {
	service := &ticketService{}
	service.Self = ticketServiceRef
	m.Map().Put(service)
	routeMethods(m, func(ctx *simulator.Context, method *simulator.Method) {
		if method.Name == "AcquireTicket" {
			if _, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine); ok {
				method.This = ticketServiceRef
			}
		}
	})
}

// consoleTicketTypes are the ticket types vSphere hands out for consoles.
var consoleTicketTypes = map[string]bool{"mks": true, "webmks": true, "device": true, "guestControl": true, "webRemoteDevice": true}

// AcquireTicket returns a ticket for a powered-on VM, naming its host at
// port 443 (ESX serves WebMKS there), as vSphere does.
func (s *ticketService) AcquireTicket(ctx *simulator.Context, req *types.AcquireTicket) soap.HasFault {
	body := new(methods.AcquireTicketBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	if !consoleTicketTypes[req.TicketType] {
		body.Fault_ = simulator.Fault("", &types.InvalidArgument{InvalidProperty: "ticketType"})
		return body
	}
	var state types.VirtualMachinePowerState
	var host *types.ManagedObjectReference
	var cfgFile string
	ctx.WithLock(vm, func() {
		state = vm.Runtime.PowerState
		host = vm.Runtime.Host
		cfgFile = vm.Config.Files.VmPathName
	})
	if state != types.VirtualMachinePowerStatePoweredOn {
		body.Fault_ = simulator.Fault("", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOn,
			ExistingState:  state,
		})
		return body
	}
	ticket := &types.VirtualMachineTicket{
		Ticket:        randomTicket(),
		CfgFile:       cfgFile,
		Port:          443,
		SslThumbprint: "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD",
	}
	if host != nil {
		if h, ok := ctx.Map.Get(*host).(*simulator.HostSystem); ok {
			ctx.WithLock(h, func() { ticket.Host = h.Name })
		}
	}
	body.Res = &types.AcquireTicketResponse{Returnval: *ticket}
	return body
}

func randomTicket() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
