package main

// DRS placement: where vCenter's DRS puts a VM of a cluster, which vcsim
// does not simulate.
//
// At creation. vcsim gives a CreateVM_Task into a cluster without a host
// any host of the cluster that mounts the VM's datastore, one in
// maintenance mode, disconnected or powered off included, where the VM
// then cannot power on (InvalidState). DRS never places a VM there: the
// call is given, as its host, one of the cluster's hosts that can run VMs
// and mounts the datastore, at random as vcsim picks. When no host can,
// vcsim's own choice stands. (ImportVApp makes its VM without a SOAP call
// of its own, so this does not see it; it powers nothing on.)
//
// At power-on, for mandatory VM-VM anti-affinity rules. vcsim powers a VM
// on on its host and never reads the cluster's rules. DRS places a VM of
// a cluster as it powers on, and never breaks an enabled mandatory
// anti-affinity rule to do so: PowerOnVM_Task of a VM in such a rule, when
// another VM of the rule runs on the VM's host, first moves the VM to a
// usable host of its cluster (connected, powered on, not in maintenance)
// that mounts all its datastores and runs no VM of the rule: the first
// such host in the cluster's order. With no such host the task fails with
// RuleViolation, as DRS refuses the power-on, and the VM stays where it
// was.
//
// A VM of the rule "runs" on its host when it is powered on, or when this
// hook let it power on less than pendingPowerOn ago (vcsim's task runs
// after the call returns: two power-ons in a row must not pick the same
// host). Decisions are made one at a time. Affinity rules, preferred
// rules, VM-host rules and load balancing are not simulated.

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const pendingPowerOn = 30 * time.Second

type drsPlacement struct {
	mo.ExtensibleManagedObject

	mu      sync.Mutex
	pending map[types.ManagedObjectReference]time.Time // VM -> when let power on
}

var drsPlacementRef = types.ManagedObjectReference{Type: "VcdriverDrsPlacement", Value: "vcdriver-drs-placement"}

// installDrsPlacement hooks both placements into the Registry's method
// Handler; it must run before serving.
func installDrsPlacement(m *simulator.Model) {
	d := &drsPlacement{pending: map[types.ManagedObjectReference]time.Time{}}
	d.Self = drsPlacementRef
	m.Map().Put(d)
	routeMethods(m, d.place)
	routeMethods(m, placeAtCreate)
}

// placeAtCreate gives a CreateVM_Task into a cluster, without a host, a
// host DRS could pick.
func placeAtCreate(ctx *simulator.Context, method *simulator.Method) {
	if method.Name != "CreateVM_Task" {
		return
	}
	req, ok := method.Body.(*types.CreateVM_Task)
	if !ok || req.Host != nil || req.Config.Files == nil {
		return
	}
	pool, ok := ctx.Map.Get(req.Pool).(*simulator.ResourcePool)
	if !ok {
		return
	}
	var owner types.ManagedObjectReference
	ctx.WithLock(pool, func() { owner = pool.Owner })
	cluster, ok := ctx.Map.Get(owner).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	var hosts, datastores []types.ManagedObjectReference
	ctx.WithLock(cluster, func() {
		hosts = append(hosts, cluster.Host...)
		datastores = append(datastores, cluster.Datastore...)
	})
	var home object.DatastorePath
	home.FromString(req.Config.Files.VmPathName)
	ds := ctx.Map.FindByName(home.Datastore, datastores)
	if ds == nil {
		return
	}
	var runnable []types.ManagedObjectReference
	for _, ref := range hosts {
		if usableFor(ctx, ref, []types.ManagedObjectReference{ds.Reference()}) {
			runnable = append(runnable, ref)
		}
	}
	if len(runnable) > 0 {
		host := runnable[rand.IntN(len(runnable))]
		req.Host = &host
	}
}

// place moves a VM about to power on off a host that runs another VM of
// one of its mandatory anti-affinity rules, or sends the call to
// PowerOnVMTask below when no host is left.
func (d *drsPlacement) place(ctx *simulator.Context, method *simulator.Method) {
	if method.Name != "PowerOnVM_Task" {
		return
	}
	vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var host types.ManagedObjectReference
	var poweredOff bool
	var datastores []types.ManagedObjectReference
	ctx.WithLock(vm, func() {
		if vm.Runtime.Host != nil {
			host = *vm.Runtime.Host
		}
		poweredOff = vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn
		datastores = append(datastores, vm.Datastore...)
	})
	h, ok := ctx.Map.Get(host).(*simulator.HostSystem)
	if !ok || !poweredOff {
		return
	}
	cluster, ok := ctx.Map.Get(*h.Parent).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	hosts, taken := d.takenHosts(ctx, cluster, vm.Self)
	if !taken[host] {
		d.pending[vm.Self] = time.Now()
		return
	}
	for _, ref := range hosts {
		if !taken[ref] && usableFor(ctx, ref, datastores) {
			moveToHost(ctx, vm, host, ref)
			d.pending[vm.Self] = time.Now()
			return
		}
	}
	method.This = drsPlacementRef
}

// takenHosts returns the cluster's hosts, and those of them running another
// VM of a mandatory anti-affinity rule that holds vm.
func (d *drsPlacement) takenHosts(ctx *simulator.Context, cluster *simulator.ClusterComputeResource, vm types.ManagedObjectReference) ([]types.ManagedObjectReference, map[types.ManagedObjectReference]bool) {
	var hosts []types.ManagedObjectReference
	var rules []types.BaseClusterRuleInfo
	ctx.WithLock(cluster, func() {
		hosts = append(hosts, cluster.Host...)
		rules = append(rules, cluster.ConfigurationEx.(*types.ClusterConfigInfoEx).Rule...)
	})
	taken := map[types.ManagedObjectReference]bool{}
	for _, r := range rules {
		rule, ok := r.(*types.ClusterAntiAffinityRuleSpec)
		if !ok || !isTrue(rule.Enabled) || !isTrue(rule.Mandatory) || simulator.FindReference(rule.Vm, vm) == nil {
			continue
		}
		for _, ref := range rule.Vm {
			if ref == vm {
				continue
			}
			if host, running := d.runningOn(ctx, ref); running {
				taken[host] = true
			}
		}
	}
	return hosts, taken
}

// runningOn is the host of a VM that is powered on, or about to be.
func (d *drsPlacement) runningOn(ctx *simulator.Context, ref types.ManagedObjectReference) (types.ManagedObjectReference, bool) {
	other, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		delete(d.pending, ref)
		return types.ManagedObjectReference{}, false
	}
	var host *types.ManagedObjectReference
	var on bool
	ctx.WithLock(other, func() {
		host = other.Runtime.Host
		on = other.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	})
	if on {
		delete(d.pending, ref)
	} else if at, ok := d.pending[ref]; ok && time.Since(at) < pendingPowerOn {
		on = true
	}
	if host == nil {
		return types.ManagedObjectReference{}, false
	}
	return *host, on
}

// usableFor: DRS may place the VM on the host.
func usableFor(ctx *simulator.Context, ref types.ManagedObjectReference, datastores []types.ManagedObjectReference) bool {
	h, ok := ctx.Map.Get(ref).(*simulator.HostSystem)
	if !ok {
		return false
	}
	usable := false
	ctx.WithLock(h, func() {
		usable = h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected &&
			h.Runtime.PowerState == types.HostSystemPowerStatePoweredOn &&
			!h.Runtime.InMaintenanceMode
		for _, ds := range datastores {
			usable = usable && simulator.FindReference(h.Datastore, ds) != nil
		}
	})
	return usable
}

// moveToHost puts a powered-off VM on another host of its cluster, as DRS
// does before powering it on.
func moveToHost(ctx *simulator.Context, vm *simulator.VirtualMachine, from, to types.ManagedObjectReference) {
	ctx.Map.AtomicUpdate(ctx, vm, []types.PropertyChange{
		{Name: "runtime.host", Val: to},
		{Name: "summary.runtime.host", Val: to},
	})
	relistOnHost(ctx, vm.Self, from, to)
}

// PowerOnVMTask is the power-on DRS refuses: no host keeps the rule.
func (d *drsPlacement) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	body := new(methods.PowerOnVM_TaskBody)
	vm, fault := lookup[*simulator.VirtualMachine](ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	var host types.ManagedObjectReference
	ctx.WithLock(vm, func() { host = *vm.Runtime.Host })
	task := simulator.CreateTask(vm, "powerOn", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, &types.RuleViolation{Host: &host}
	})
	body.Res = &types.PowerOnVM_TaskResponse{Returnval: task.Run(ctx)}
	return body
}
