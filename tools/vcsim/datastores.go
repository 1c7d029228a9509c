package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// nfsRemoteHost is the NFS server every nfsN datastore claims to come from.
const nfsRemoteHost = "nfs.vcsim.invalid"

// createNFSDatastores creates cfg.nfs shared NFS datastores, nfs0..nfsN-1,
// each backed by the directory <root>/nfsN and mounted on every host (of
// every cluster and the standalone ones) with
// HostDatastoreSystem.CreateNasDatastore, so that summary.type is "NFS".
// The simulator names a NAS datastore after the base name of its local
// path. With several datacenters each gets its own nfsN datastore object
// over the same directory, as one NFS export mounted in each would.
// It returns datastore name -> backing directory.
func createNFSDatastores(ctx context.Context, cfg *config, m *simulator.Model, c *vim25.Client, root string) (map[string]string, error) {
	hosts := m.Map().All("HostSystem")
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Entity().Name < hosts[j].Entity().Name })

	dirs := map[string]string{}
	for i := 0; i < cfg.nfs; i++ {
		name := fmt.Sprintf("nfs%d", i)
		dir, err := filepath.Abs(filepath.Join(root, name))
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		spec := types.HostNasVolumeSpec{
			RemoteHost: nfsRemoteHost,
			RemotePath: "/exports/" + name,
			LocalPath:  dir,
			AccessMode: string(types.HostMountModeReadWrite),
			Type:       string(types.HostFileSystemVolumeFileSystemTypeNFS),
		}
		for _, h := range hosts {
			host := object.NewHostSystem(c, h.Reference())
			dss, err := host.ConfigManager().DatastoreSystem(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := dss.CreateNasDatastore(ctx, spec); err != nil {
				return nil, fmt.Errorf("mount %s on %s: %w", name, h.Entity().Name, err)
			}
		}
		dirs[name] = dir
	}

	return dirs, nil
}

// setDatastoreCapacity applies -datastore-capacity-gb to every datastore,
// the NFS ones and the clusters' (cluster_datastores.go) alike.
func setDatastoreCapacity(cfg *config, m *simulator.Model) {
	if cfg.datastoreCapacityGB <= 0 {
		return
	}
	capacity := int64(cfg.datastoreCapacityGB) * int64(units.GB)
	for _, e := range m.Map().All("Datastore") {
		ds := e.(*simulator.Datastore)
		ds.Summary.Capacity = capacity
		ds.Summary.FreeSpace = capacity
		info := ds.Info.GetDatastoreInfo()
		info.FreeSpace = capacity
		info.MaxFileSize = capacity
		info.MaxMemoryFileSize = capacity
		if vmfs, ok := ds.Info.(*types.VmfsDatastoreInfo); ok {
			vmfs.MaxPhysicalRDMFileSize = capacity
			vmfs.MaxVirtualRDMFileSize = capacity
			vmfs.Vmfs.Capacity = capacity
		}
	}
}
