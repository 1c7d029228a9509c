package main

import (
	"context"
	"flag"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
)

// testVCenter is a launcher with one cluster of one host and one VM, and a client logged in to it.
type testVCenter struct {
	inst *instance
	c    *govmomi.Client
	vm   *object.VirtualMachine
	uuid string // the VM's config.instanceUuid
}

// newTestVCenter starts a launcher (stopped when the test ends) with extraFlags added.
func newTestVCenter(t *testing.T, extraFlags ...string) *testVCenter {
	t.Helper()
	ctx := context.Background()
	args := append([]string{"-clusters", "1", "-hosts-per-cluster", "1", "-vms", "1", "-datastore-root", t.TempDir()}, extraFlags...)
	inst, err := start(parseFlags(flag.NewFlagSet("test", flag.ContinueOnError), args))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.stop)
	v := &testVCenter{inst: inst, c: newTestClient(t, inst)}
	v.vm, err = find.NewFinder(v.c.Client, true).VirtualMachine(ctx, "/DC0/vm/DC0_C0_RP0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	v.uuid = instanceUUID(t, v.vm)
	return v
}

// instanceUUID is the VM's config.instanceUuid, the id vcdriver finds VMs by.
func instanceUUID(t *testing.T, vm *object.VirtualMachine) string {
	t.Helper()
	var props mo.VirtualMachine
	if err := vm.Properties(context.Background(), vm.Reference(), []string{"config.instanceUuid"}, &props); err != nil {
		t.Fatal(err)
	}
	return props.Config.InstanceUuid
}

// newTestClient logs a new session in, e.g. after the old one expired.
func newTestClient(t *testing.T, inst *instance) *govmomi.Client {
	t.Helper()
	c, err := govmomi.NewClient(context.Background(), inst.server.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
