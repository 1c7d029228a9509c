package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

// instance is a running simulator.
type instance struct {
	model   *simulator.Model
	server  *simulator.Server
	tmpRoot string // datastore root we created, removed at stop
	info    *info
}

// info is the JSON line printed on stdout once serving.
type info struct {
	URL        string            `json:"url"`
	Host       string            `json:"host"`
	Port       int               `json:"port"`
	Datastores map[string]string `json:"datastores"` // name -> backing directory
	Clusters   []string          `json:"clusters"`
	AboutUUID  string            `json:"about_uuid"`
	// cluster name -> its own datastore, with -cluster-datastores only
	// (absent without, so the line is unchanged)
	ClusterDatastores map[string]string `json:"cluster_datastores,omitempty"`
}

// start builds the inventory, starts serving and fills in info, the JSON
// object printed on stdout.
func start(cfg *config) (*instance, error) {
	ctx := context.Background()
	inst := &instance{}

	root := cfg.datastoreRoot
	if root == "" {
		dir, err := os.MkdirTemp("", "vcdriver-vcsim-")
		if err != nil {
			return nil, err
		}
		root, inst.tmpRoot = dir, dir
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}

	fail := func(what string, err error) (*instance, error) {
		inst.stop()
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	m := newModel(cfg)
	if err := m.Create(); err != nil {
		_ = os.RemoveAll(inst.tmpRoot)
		return nil, fmt.Errorf("create model: %w", err)
	}
	inst.model = m

	// In-process client: calls go straight to the simulator, no HTTP, no login.
	c, err := vim25.NewClient(ctx, m.Service)
	if err != nil {
		return fail("in-process client", err)
	}
	datastores, err := createNFSDatastores(ctx, cfg, m, c, root)
	if err != nil {
		return fail("NFS datastores", err)
	}
	clusterDirs, clusterDatastores, err := createClusterDatastores(ctx, cfg, m, c, root)
	if err != nil {
		return fail("cluster datastores", err)
	}
	for name, dir := range clusterDirs {
		datastores[name] = dir
	}
	setDatastoreCapacity(cfg, m)
	configureHosts(cfg, m)
	if err := configureHA(cfg.haAdmission, m); err != nil {
		return fail("HA admission control", err)
	}
	if cfg.guestTools {
		m.Map().AddHandler(guestTools{})
	}
	if err := createVMs(ctx, cfg, c); err != nil {
		return fail("VMs", err)
	}
	if err := configureService(cfg, m); err != nil {
		return fail("service", err)
	}
	if _, err := installStoragePolicies(m); err != nil {
		return fail("storage policies", err)
	}

	inst.server = m.Service.NewServer()
	installExtensions(inst.server, m)

	u := *inst.server.URL
	u.User = nil
	port, _ := strconv.Atoi(u.Port())
	inst.info = &info{
		URL:        u.String(),
		Host:       u.Hostname(),
		Port:       port,
		Datastores: datastores,
		Clusters:   clusterNames(m),
		AboutUUID:  c.ServiceContent.About.InstanceUuid,

		ClusterDatastores: clusterDatastores,
	}
	return inst, nil
}

// stop closes the server, removes the model's files and the datastore root
// if we created it. In-flight calls get half a second; a long-polling
// WaitForUpdatesEx would never finish by itself (vcsim does not watch the
// connection), so its connection is closed and we move on.
func (inst *instance) stop() {
	if inst.server != nil {
		done := make(chan struct{})
		go func() {
			inst.server.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond):
			log.Print("requests still in flight, closing their connections")
			inst.server.CloseClientConnections()
			select {
			case <-done:
			case <-time.After(500 * time.Millisecond):
				log.Print("handlers still running, exiting anyway")
			}
		}
	}
	if inst.model != nil {
		inst.model.Remove()
	}
	if inst.tmpRoot != "" {
		_ = os.RemoveAll(inst.tmpRoot)
	}
}
