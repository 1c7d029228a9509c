package main

import (
	"context"
	"flag"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestAcquireTicket(t *testing.T) {
	ctx := context.Background()
	cfg := parseFlags(flag.NewFlagSet("test", flag.ContinueOnError),
		[]string{"-clusters", "1", "-hosts-per-cluster", "1", "-vms", "1", "-datastore-root", t.TempDir()})
	inst, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.stop)
	c, err := govmomi.NewClient(ctx, inst.server.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client, true).VirtualMachine(ctx, "/DC0/vm/DC0_C0_RP0_VM0")
	if err != nil {
		t.Fatal(err)
	}
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
