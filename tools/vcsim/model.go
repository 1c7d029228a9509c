package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// config holds the command line settings.
type config struct {
	listen          string
	tlsCert, tlsKey string

	datacenters     int
	clusters        int
	hostsPerCluster int
	standaloneHosts int
	vms             int
	vmWorkers       int

	typedTraversal bool
	apiVersion     string
	instanceUUID   string

	hostMemoryMB int
	hostCPUCores int

	nfs                 int
	clusterDatastores   bool
	datastoreRoot       string
	datastoreCapacityGB int

	username, password string
	sessionIdleTimeout time.Duration

	taskDelay  time.Duration
	guestTools bool

	haAdmission string

	exitOnStdinClose bool
}

func parseFlags(fs *flag.FlagSet, args []string) *config {
	c := &config{}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key); plain HTTP if unset")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key for -tls-cert")
	fs.IntVar(&c.datacenters, "datacenters", 1, "number of datacenters")
	fs.IntVar(&c.clusters, "clusters", 1, "clusters per datacenter")
	fs.IntVar(&c.hostsPerCluster, "hosts-per-cluster", 3, "hosts in each cluster")
	fs.IntVar(&c.standaloneHosts, "standalone-hosts", 0, "standalone hosts per datacenter")
	fs.IntVar(&c.vms, "vms", 0, "pre-existing VMs per cluster and per standalone host (on nfs0, powered on)")
	fs.IntVar(&c.vmWorkers, "vm-workers", 1, "create the -vms VMs with this many parallel workers (bulk_vms.go)")
	fs.BoolVar(&c.typedTraversal, "typed-traversal", false, "follow PropertyCollector TraversalSpecs only from objects of their type, as vCenter does (typed_traversal.go)")
	fs.StringVar(&c.instanceUUID, "instance-uuid", "", "about.instanceUuid to report (default: a new one each launch); a vCenter keeps its own across restarts, and vcdriver's node names carry it")
	fs.StringVar(&c.apiVersion, "api-version", "", "vSphere API version to report (about.apiVersion, /sdk/vimServiceVersions.xml), e.g. 8.0.3.0; default vcsim's 6.5, with which pyVmomi refuses to send calls newer than 6.5 such as HttpNfcLeasePullFromUrls_Task (6.7)")
	fs.IntVar(&c.hostMemoryMB, "host-memory-mb", 0, "memory of every host in MB (0 = simulator default, 4095 MB)")
	fs.IntVar(&c.hostCPUCores, "host-cpu-cores", 0, "CPU cores (and threads) of every host (0 = simulator default, 2)")
	fs.IntVar(&c.nfs, "nfs", 1, "number of shared NFS datastores nfs0..nfsN-1, mounted on every host")
	fs.BoolVar(&c.clusterDatastores, "cluster-datastores", false, "also give each cluster a VMFS datastore ds-<cluster>, mounted on that cluster's hosts only (cluster_datastores.go)")
	fs.StringVar(&c.datastoreRoot, "datastore-root", "", "parent directory of the datastore directories (default: a temp dir removed at exit)")
	fs.IntVar(&c.datastoreCapacityGB, "datastore-capacity-gb", 0, "capacity (and initial free space) of each datastore in GiB (0 = simulator default: 1 TiB per mounted host)")
	fs.StringVar(&c.username, "username", "", "only accept this user name (default: any non-empty pair)")
	fs.StringVar(&c.password, "password", "", "only accept this password (with -username)")
	fs.DurationVar(&c.sessionIdleTimeout, "session-idle-timeout", 0, "expire sessions idle for this long (0 = never)")
	fs.DurationVar(&c.taskDelay, "task-delay", 0, "delay every task this long in state running before it does its work (0 = none)")
	fs.BoolVar(&c.guestTools, "guest-tools", false, "report VMware Tools running in powered-on VMs (so RebootGuest works)")
	fs.StringVar(&c.haAdmission, "ha-admission", "", "HA admission control on every cluster: percent:<cpu>:<mem>, hosts:<n> or failover-hosts:<n> (ha.go)")
	fs.BoolVar(&c.exitOnStdinClose, "exit-on-stdin-close", false, "also shut down when stdin reaches EOF (the parent holding the pipe died)")
	_ = fs.Parse(args)

	if fs.NArg() != 0 {
		log.Fatalf("unexpected arguments: %v", fs.Args())
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		log.Fatal("-tls-cert and -tls-key go together")
	}
	if c.password != "" && c.username == "" {
		log.Fatal("-password needs -username")
	}
	if c.vms > 0 && c.nfs < 1 {
		log.Fatal("-vms needs at least one NFS datastore (-nfs >= 1)")
	}
	return c
}

// newModel returns the govmomi VPX model for cfg, not yet created.
func newModel(cfg *config) *simulator.Model {
	m := simulator.VPX()
	m.Datacenter = cfg.datacenters
	m.Cluster = cfg.clusters
	m.ClusterHost = cfg.hostsPerCluster
	m.Host = cfg.standaloneHosts
	m.Datastore = 0 // our NFS datastores replace the model's LocalDS_N
	m.Machine = 0   // the model's VMs would need LocalDS_0: see createVMs
	m.Autostart = true
	// vcsim reports a per-machine constant about.instanceUuid; real vCenters
	// (and so several simulators) each have their own.
	m.ServiceContent.About.InstanceUuid = uuid.NewString()
	if cfg.instanceUUID != "" {
		m.ServiceContent.About.InstanceUuid = cfg.instanceUUID
	}
	if cfg.apiVersion != "" {
		// Clients negotiate their API version from this (pyVmomi's
		// SmartConnect, vcdriver's session); vcsim answers every version
		// alike.
		m.ServiceContent.About.ApiVersion = cfg.apiVersion
		if parts := strings.Split(cfg.apiVersion, "."); len(parts) >= 3 {
			m.ServiceContent.About.Version = strings.Join(parts[:3], ".")
		}
	}
	return m
}

// configureService applies the listener, credentials and TLS settings.
// It must run after Model.Create and before Service.NewServer.
func configureService(cfg *config, m *simulator.Model) error {
	u := &url.URL{Host: cfg.listen}
	if cfg.username != "" {
		u.User = url.UserPassword(cfg.username, cfg.password)
	}
	m.Service.Listen = u
	if cfg.typedTraversal {
		installTypedTraversal(m)
	}

	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		m.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	if cfg.taskDelay > 0 {
		// A package global in vcsim. LockHandoff=0: do not hold the entity's
		// lock during the delay, so its properties stay readable.
		simulator.TaskDelay.Delay = int(cfg.taskDelay / time.Millisecond)
		simulator.TaskDelay.MethodDelay = map[string]int{"LockHandoff": 0}
	}

	if cfg.sessionIdleTimeout > 0 {
		// Read by simulator.SessionIdleWatch at each Login: a session idle
		// longer than this is dropped, checked every timeout interval, so it
		// is gone between 1x and 2x the timeout after its last call.
		m.Map().OptionManager().UpdateOptions(&types.UpdateOptions{
			ChangedValue: []types.BaseOptionValue{&types.OptionValue{
				Key:   "config.vmacore.soap.sessionTimeout",
				Value: cfg.sessionIdleTimeout.String(),
			}},
		})
	}
	return nil
}

// configureHosts sets every host's memory and CPU cores and recomputes the
// compute resource summaries from the hosts.
func configureHosts(cfg *config, m *simulator.Model) {
	for _, e := range m.Map().All("HostSystem") {
		h := e.(*simulator.HostSystem)
		if cfg.hostMemoryMB > 0 {
			size := int64(cfg.hostMemoryMB) * int64(units.MB)
			h.Hardware.MemorySize = size
			h.Summary.Hardware.MemorySize = size
		}
		if cfg.hostCPUCores > 0 {
			cores := int16(cfg.hostCPUCores)
			pkgs := int16(1)
			if cores%2 == 0 {
				pkgs = 2
			}
			h.Hardware.CpuInfo.NumCpuCores = cores
			h.Hardware.CpuInfo.NumCpuThreads = cores
			h.Hardware.CpuInfo.NumCpuPackages = pkgs
			h.Summary.Hardware.NumCpuCores = cores
			h.Summary.Hardware.NumCpuThreads = cores
			h.Summary.Hardware.NumCpuPkgs = pkgs
		}
	}

	for _, kind := range []string{"ClusterComputeResource", "ComputeResource"} {
		for _, e := range m.Map().All(kind) {
			var cr *mo.ComputeResource
			switch x := e.(type) {
			case *simulator.ClusterComputeResource:
				cr = &x.ComputeResource
			case *mo.ComputeResource:
				cr = x
			default:
				continue
			}
			summarize(m, cr)
		}
	}
}

// summarize recomputes a compute resource summary the way vCenter reports
// it: totalCpu = sum(cpuMhz * cores) in MHz, totalMemory in bytes,
// effectiveCpu in MHz and effectiveMemory in MB.
func summarize(m *simulator.Model, cr *mo.ComputeResource) {
	if cr.Summary == nil {
		return
	}
	s := cr.Summary.GetComputeResourceSummary()
	s.TotalCpu, s.TotalMemory, s.NumCpuCores, s.NumCpuThreads = 0, 0, 0, 0
	s.EffectiveCpu, s.EffectiveMemory, s.NumHosts, s.NumEffectiveHosts = 0, 0, 0, 0
	for _, ref := range cr.Host {
		h, ok := m.Map().Get(ref).(*simulator.HostSystem)
		if !ok {
			continue
		}
		hw := h.Summary.Hardware
		mhz := hw.CpuMhz * int32(hw.NumCpuCores)
		s.TotalCpu += mhz
		s.TotalMemory += hw.MemorySize
		s.NumCpuCores += hw.NumCpuCores
		s.NumCpuThreads += hw.NumCpuThreads
		s.EffectiveCpu += mhz
		s.EffectiveMemory += hw.MemorySize / int64(units.MB)
		s.NumHosts++
		s.NumEffectiveHosts++
	}
}

// clusterNames returns the sorted names of all clusters.
func clusterNames(m *simulator.Model) []string {
	names := []string{}
	for _, e := range m.Map().All("ClusterComputeResource") {
		names = append(names, e.Entity().Name)
	}
	sort.Strings(names)
	return names
}

// createVMs creates cfg.vms VMs in every cluster's root resource pool and on
// every standalone host, named as govmomi's model names them
// (<cluster>_RP0_VM<i>, <host>_VM<i>), with their files on nfs0.
func createVMs(ctx context.Context, cfg *config, c *vim25.Client) error {
	if cfg.vms == 0 {
		return nil
	}
	var jobs []vmJob
	finder := find.NewFinder(c, false)
	dcs, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return err
	}
	for _, dc := range dcs {
		folders, err := dc.Folders(ctx)
		if err != nil {
			return err
		}
		finder.SetDatacenter(dc)
		crs, err := finder.ComputeResourceList(ctx, "*")
		if err != nil {
			return err
		}
		for _, cr := range crs {
			pool, err := cr.ResourcePool(ctx)
			if err != nil {
				return err
			}
			prefix := cr.Name()
			var host *object.HostSystem
			if cr.Reference().Type == "ClusterComputeResource" {
				prefix += "_RP0"
			} else {
				hosts, err := cr.Hosts(ctx)
				if err != nil || len(hosts) == 0 {
					return fmt.Errorf("hosts of %s: %v", cr.Name(), err)
				}
				host = hosts[0]
			}
			for i := 0; i < cfg.vms; i++ {
				jobs = append(jobs, vmJob{folders.VmFolder, pool, host, fmt.Sprintf("%s_VM%d", prefix, i)})
			}
		}
	}
	return runVMJobs(ctx, c, jobs, cfg.vmWorkers)
}

func createVM(ctx context.Context, c *vim25.Client, folder *object.Folder, pool *object.ResourcePool, host *object.HostSystem, name string) error {
	spec := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs:  1,
		MemoryMB: 128,
		Files:    &types.VirtualMachineFileInfo{VmPathName: "[nfs0]"},
	}
	var devices object.VirtualDeviceList
	scsi, _ := devices.CreateSCSIController("pvscsi")
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
		"[nfs0] "+path.Join(name, "disk1.vmdk"))
	disk.CapacityInKB = int64(units.GB) / int64(units.KB)
	nic := esx.EthernetCard
	devices = append(devices, scsi, disk, &nic)
	spec.DeviceChange, _ = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)

	task, err := folder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return err
	}
	result, err := waitTask(ctx, c, task)
	if err != nil {
		return fmt.Errorf("create VM %s: %w", name, err)
	}
	vm := object.NewVirtualMachine(c, result.(types.ManagedObjectReference))
	task, err = vm.PowerOn(ctx)
	if err != nil {
		return err
	}
	_, err = waitTask(ctx, c, task)
	return err
}
