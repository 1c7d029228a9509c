package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func newGuestFixture(t *testing.T) (*instance, *object.VirtualMachine, string) {
	t.Helper()
	v := newTestVCenter(t, "-guest-tools")
	return v.inst, v.vm, v.uuid
}

func guestProps(t *testing.T, vm *object.VirtualMachine) mo.VirtualMachine {
	t.Helper()
	var props mo.VirtualMachine
	if err := vm.Properties(context.Background(), vm.Reference(), []string{"runtime.powerState", "guest.toolsRunningStatus"}, &props); err != nil {
		t.Fatal(err)
	}
	return props
}

func guestsOf(t *testing.T, inst *instance) map[string]guestState {
	t.Helper()
	res, err := http.Get(inst.server.URL.Scheme + "://" + inst.server.URL.Host + guestOpsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Guests map[string]guestState `json:"guests"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Guests
}

func TestRebootGuestTakesToolsDownAndUp(t *testing.T) {
	inst, vm, id := newGuestFixture(t)
	ctx := context.Background()
	if err := vm.RebootGuest(ctx); err != nil {
		t.Fatal(err)
	}
	if got := guestProps(t, vm).Guest.ToolsRunningStatus; got != string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning) {
		t.Fatalf("tools right after RebootGuest: %s", got)
	}
	time.Sleep(rebootDowntime + 300*time.Millisecond)
	p := guestProps(t, vm)
	if p.Guest.ToolsRunningStatus != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) ||
		p.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("after the reboot: tools %s, power %s", p.Guest.ToolsRunningStatus, p.Runtime.PowerState)
	}
	if n := guestsOf(t, inst)[id].RebootGuest; n != 1 {
		t.Fatalf("RebootGuest calls seen: %d", n)
	}
}

func TestUnresponsiveGuestIgnoresShutdownAndReboot(t *testing.T) {
	inst, vm, id := newGuestFixture(t)
	ctx := context.Background()
	url := inst.server.URL.Scheme + "://" + inst.server.URL.Host + guestOpsPath
	body, _ := json.Marshal(map[string]any{"vm": id, "unresponsive": true})
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("arm: %v %v", err, res)
	}
	if err := vm.ShutdownGuest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.RebootGuest(ctx); err != nil {
		t.Fatal(err)
	}
	p := guestProps(t, vm)
	if p.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn ||
		p.Guest.ToolsRunningStatus != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
		t.Fatalf("unresponsive guest acted: power %s, tools %s", p.Runtime.PowerState, p.Guest.ToolsRunningStatus)
	}
	if g := guestsOf(t, inst)[id]; g.ShutdownGuest != 1 || g.RebootGuest != 1 || !g.Unresponsive {
		t.Fatalf("seen: %+v", g)
	}

	// Responsive again: ShutdownGuest powers off, as vcsim's does.
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	if _, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	if err := vm.ShutdownGuest(ctx); err != nil {
		t.Fatal(err)
	}
	if p := guestProps(t, vm); p.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("after ShutdownGuest: %s", p.Runtime.PowerState)
	}
}
