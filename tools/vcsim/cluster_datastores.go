package main

// Per-cluster datastores (-cluster-datastores).
//
// A real vCenter often has, besides the NFS exports every host mounts, a
// SAN LUN zoned to one cluster: a VMFS datastore that only that cluster's
// hosts see. Here each cluster gets ds-<cluster> (cluster names carry
// their datacenter's, so the names are unique), backed by the directory
// <root>/ds-<cluster> and mounted with HostDatastoreSystem.
// CreateLocalDatastore on each of the cluster's hosts. vcsim keeps the
// host, cluster, datacenter and folder lists as it does for NFS; only the
// type is ours: vcsim makes "OTHER" with a LocalDatastoreInfo, and nothing
// in it depends on either, so the datastore is turned into a VMFS one
// (summary.type "VMFS", a VmfsDatastoreInfo). Its extent names a LUN that
// is not added to the hosts' config.storageDevice, so the LUNs listed
// there stay those the tests declare (iscsi.go).

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// clusterDatastoreName is the name of a cluster's own datastore.
func clusterDatastoreName(cluster string) string {
	return "ds-" + cluster
}

// createClusterDatastores creates each cluster's datastore if
// cfg.clusterDatastores. It returns datastore name -> backing directory and
// cluster name -> datastore name. A cluster without hosts gets none: a
// datastore exists only as mounted somewhere.
func createClusterDatastores(ctx context.Context, cfg *config, m *simulator.Model, c *vim25.Client, root string) (map[string]string, map[string]string, error) {
	if !cfg.clusterDatastores {
		return nil, nil, nil
	}
	dirs, byCluster := map[string]string{}, map[string]string{}
	clusters := m.Map().All("ClusterComputeResource")
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Entity().Name < clusters[j].Entity().Name })

	for _, e := range clusters {
		cluster := e.(*simulator.ClusterComputeResource)
		if len(cluster.Host) == 0 {
			continue
		}
		name := clusterDatastoreName(cluster.Name)
		dir, err := filepath.Abs(filepath.Join(root, name))
		if err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		var ref types.ManagedObjectReference
		for i, h := range cluster.Host {
			dss, err := object.NewHostSystem(c, h).ConfigManager().DatastoreSystem(ctx)
			if err != nil {
				return nil, nil, err
			}
			// The first host creates it, the others mount the same object
			// (and vcsim answers them with an empty reference).
			ds, err := dss.CreateLocalDatastore(ctx, name, dir)
			if err != nil {
				return nil, nil, fmt.Errorf("mount %s on %s: %w", name, m.Map().Get(h).(*simulator.HostSystem).Name, err)
			}
			if i == 0 {
				ref = ds.Reference()
			}
		}
		makeVMFS(m.Map().Get(ref).(*simulator.Datastore))
		dirs[name] = dir
		byCluster[cluster.Name] = name
	}
	return dirs, byCluster, nil
}

// makeVMFS turns a datastore vcsim made with CreateLocalDatastore into a
// shared VMFS one. Its uuid and LUN derive from its name, so a restart
// reports the same ones, as a LUN keeps its VMFS.
func makeVMFS(ds *simulator.Datastore) {
	sum := sha1.Sum([]byte(ds.Name))
	h := hex.EncodeToString(sum[:])
	ds.Summary.Type = string(types.HostFileSystemVolumeFileSystemTypeVMFS)
	ds.Summary.MultipleHostAccess = types.NewBool(true)
	ds.Summary.Accessible = true
	ds.Info = &types.VmfsDatastoreInfo{
		DatastoreInfo:          *ds.Info.GetDatastoreInfo(),
		MaxPhysicalRDMFileSize: ds.Summary.Capacity,
		MaxVirtualRDMFileSize:  ds.Summary.Capacity,
		Vmfs: &types.HostVmfsVolume{
			HostFileSystemVolume: types.HostFileSystemVolume{
				Type:     string(types.HostFileSystemVolumeFileSystemTypeVMFS),
				Name:     ds.Name,
				Capacity: ds.Summary.Capacity,
			},
			BlockSizeMb:  1,
			BlockSize:    1024,
			MaxBlocks:    63963136,
			MajorVersion: 6,
			Version:      "6.82",
			Uuid:         h[0:8] + "-" + h[8:16] + "-" + h[16:20] + "-" + h[20:32],
			Extent:       []types.HostScsiDiskPartition{{DiskName: "naa.6" + h[:31], Partition: 1}},
			Ssd:          types.NewBool(false),
			Local:        types.NewBool(false),
		},
	}
}
