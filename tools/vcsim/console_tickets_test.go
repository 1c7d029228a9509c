package main

import (
	"context"
	"testing"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestAcquireTicket(t *testing.T) {
	ctx := context.Background()
	v := newTestVCenter(t)
	c, vm := v.c, v.vm
	var props mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.host", "config.files.vmPathName"}, &props); err != nil {
		t.Fatal(err)
	}
	var host mo.HostSystem
	if err := vm.Properties(ctx, *props.Runtime.Host, []string{"name"}, &host); err != nil {
		t.Fatal(err)
	}
	res, err := methods.AcquireTicket(ctx, c.Client, &types.AcquireTicket{This: vm.Reference(), TicketType: "webmks"})
	if err != nil {
		t.Fatal(err)
	}
	ticket := res.Returnval
	if ticket.Host != host.Name || ticket.Port != 443 || len(ticket.Ticket) != 32 || ticket.CfgFile != props.Config.Files.VmPathName {
		t.Fatalf("unexpected ticket %+v (host %s)", ticket, host.Name)
	}
	if _, err := methods.AcquireTicket(ctx, c.Client, &types.AcquireTicket{This: vm.Reference(), TicketType: "bogus"}); err == nil {
		t.Fatal("a bogus ticket type was accepted")
	}
	task, err := vm.PowerOff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := methods.AcquireTicket(ctx, c.Client, &types.AcquireTicket{This: vm.Reference(), TicketType: "webmks"}); err == nil {
		t.Fatal("a powered-off VM got a ticket")
	}
}
