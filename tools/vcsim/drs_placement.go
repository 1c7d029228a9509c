package main

// CreateVM_Task into a cluster without a host: the VM goes on a host DRS
// could pick.
//
// vcsim picks any host of the cluster that mounts the VM's datastore, one
// in maintenance mode, disconnected or powered off included, where the VM
// then cannot power on (InvalidState). vCenter's DRS never places a VM
// there: the call is given, as its host, one of the cluster's hosts that
// can run VMs and mount the datastore, at random as vcsim picks. When no
// host can, vcsim's own choice stands. (ImportVApp makes its VM without a
// SOAP call of its own, so this does not see it; it powers nothing on.)

import (
	"math/rand/v2"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// installDRSPlacement hooks placeByDRS into the Registry's method Handler;
// it must run before serving.
func installDRSPlacement(m *simulator.Model) {
	routeMethods(m, placeByDRS)
}

func placeByDRS(ctx *simulator.Context, method *simulator.Method) {
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
	var hosts []types.ManagedObjectReference
	ctx.WithLock(cluster, func() { hosts = append(hosts, cluster.Host...) })
	var home object.DatastorePath
	home.FromString(req.Config.Files.VmPathName)
	var runnable []types.ManagedObjectReference
	for _, ref := range hosts {
		if h, ok := ctx.Map.Get(ref).(*simulator.HostSystem); ok && canRunVMs(ctx, h, home.Datastore) {
			runnable = append(runnable, ref)
		}
	}
	if len(runnable) > 0 {
		host := runnable[rand.IntN(len(runnable))]
		req.Host = &host
	}
}

// canRunVMs says whether DRS may place a VM whose home is on datastore on h.
func canRunVMs(ctx *simulator.Context, h *simulator.HostSystem, datastore string) bool {
	var usable bool
	var mounted []types.ManagedObjectReference
	ctx.WithLock(h, func() {
		r := h.Runtime
		usable = !r.InMaintenanceMode &&
			r.ConnectionState == types.HostSystemConnectionStateConnected &&
			r.PowerState == types.HostSystemPowerStatePoweredOn
		mounted = append(mounted, h.Datastore...)
	})
	if !usable {
		return false
	}
	return ctx.Map.FindByName(datastore, mounted) != nil
}
