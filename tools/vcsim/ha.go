package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// HA admission control, preset per cluster from the command line.
//
// vcsim keeps only dasConfig.enabled and admissionControlEnabled from
// ReconfigureComputeResource_Task and drops the admission control policy,
// so a test cannot set one through the API. -ha-admission presets it on
// every cluster, as an operator sets it in the vSphere client:
//
//	percent:<cpu>:<memory>   failover resources, percent of the cluster
//	hosts:<n>                failover level, host failures tolerated
//	failover-hosts:<n>       the first n hosts of each cluster kept spare
func configureHA(spec string, m *simulator.Model) error {
	if spec == "" {
		return nil
	}
	kind, rest, _ := strings.Cut(spec, ":")
	args := strings.Split(rest, ":")
	ints := make([]int32, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return fmt.Errorf("-ha-admission %q: %q is not a count", spec, a)
		}
		ints[i] = int32(n)
	}
	for _, e := range m.Map().All("ClusterComputeResource") {
		c := e.(*simulator.ClusterComputeResource)
		var policy types.BaseClusterDasAdmissionControlPolicy
		switch {
		case kind == "percent" && len(ints) == 2:
			policy = &types.ClusterFailoverResourcesAdmissionControlPolicy{
				CpuFailoverResourcesPercent:    ints[0],
				MemoryFailoverResourcesPercent: ints[1],
			}
		case kind == "hosts" && len(ints) == 1:
			policy = &types.ClusterFailoverLevelAdmissionControlPolicy{
				FailoverLevel: ints[0],
			}
		case kind == "failover-hosts" && len(ints) == 1:
			n := int(ints[0])
			if n > len(c.Host) {
				n = len(c.Host)
			}
			policy = &types.ClusterFailoverHostAdmissionControlPolicy{
				FailoverHosts: append([]types.ManagedObjectReference(nil),
					c.Host[:n]...),
			}
		default:
			return fmt.Errorf("-ha-admission %q: want percent:<cpu>:<mem>, "+
				"hosts:<n> or failover-hosts:<n>", spec)
		}
		cfg := c.ConfigurationEx.(*types.ClusterConfigInfoEx)
		on := true
		cfg.DasConfig.Enabled = &on
		cfg.DasConfig.AdmissionControlEnabled = &on
		cfg.DasConfig.AdmissionControlPolicy = policy
	}
	return nil
}
