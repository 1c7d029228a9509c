package main

// Software iSCSI on every host, and the targets a storage array exports.
//
// vcsim's hosts have block, Fibre Channel and SAS adapters only. Here
// every host gets a software iSCSI adapter (vmhba65, its own initiator
// name) on which AddInternetScsiStaticTargets and AddInternetScsiSendTargets
// configure targets and RescanHba discovers their LUNs: a LUN shows up in
// config.storageDevice.scsiLun (a ScsiDisk) and in scsiTopology under the
// adapter's target, as on ESX. Which LUNs a target has is the array's
// business; tests declare them over HTTP:
//
//	POST   /vcdriver/iscsi-targets  {"portal": "10.0.0.5:3260", "iqn": "iqn...", "luns": [{"lun": 1, "uuid": "...", "blocks": 8192}]}
//	GET    /vcdriver/iscsi-targets  {"targets": [...]}
//	DELETE /vcdriver/iscsi-targets  forgets them (LUNs found already stay)
//
// There is no data path: a raw device mapping of such a LUN is a device
// in the VM's configuration, nothing reads or writes it.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	iscsiTargetsPath = "/vcdriver/iscsi-targets"
	iscsiHbaDevice   = "vmhba65"
	iscsiHbaKey      = "key-vim.host.InternetScsiHba-vmhba65"
)

type iscsiLun struct {
	Lun    int32  `json:"lun"`
	UUID   string `json:"uuid"`
	Blocks int64  `json:"blocks"`
}

type iscsiTarget struct {
	Portal string     `json:"portal"`
	IQN    string     `json:"iqn"`
	Luns   []iscsiLun `json:"luns"`
}

type iscsiArray struct {
	mu      sync.Mutex
	targets []iscsiTarget
}

func newISCSI() *iscsiArray {
	return &iscsiArray{}
}

// iscsiService answers the storage systems' iSCSI calls (see exportService
// for why calls are routed to an object of our own).
type iscsiService struct {
	mo.ExtensibleManagedObject
	a *iscsiArray
}

var iscsiServiceRef = types.ManagedObjectReference{Type: "VcdriverISCSIService", Value: "vcdriver-iscsi"}

// install gives each host its adapter and routes the calls; it must run
// before serving.
func (a *iscsiArray) install(m *simulator.Model) {
	// Not serving yet: no other goroutine sees these objects.
	for _, ref := range m.Map().All("HostSystem") {
		host := m.Map().Get(ref.Reference()).(*simulator.HostSystem)
		storage, ok := m.Map().Get(*host.ConfigManager.StorageSystem).(*simulator.HostStorageSystem)
		if !ok || host.Config == nil || host.Config.StorageDevice == nil {
			continue
		}
		info := host.Config.StorageDevice
		info.HostBusAdapter = append(info.HostBusAdapter, &types.HostInternetScsiHba{
			HostHostBusAdapter: types.HostHostBusAdapter{
				Key: iscsiHbaKey, Device: iscsiHbaDevice, Bus: 0,
				Status: "online", Model: "iSCSI Software Adapter",
				Driver: "iscsi_vmk",
			},
			IsSoftwareBased: true,
			IScsiName:       "iqn.1998-01.com.vmware:" + strings.ToLower(strings.ReplaceAll(host.Name, "_", "-")),
		})
		if info.ScsiTopology == nil {
			info.ScsiTopology = &types.HostScsiTopology{}
		}
		info.ScsiTopology.Adapter = append(info.ScsiTopology.Adapter, types.HostScsiTopologyInterface{
			Key: "key-vim.host.ScsiTopology.Interface-" + iscsiHbaDevice, Adapter: iscsiHbaKey,
		})
		// The storage system shows the host's own (per-host) copy.
		storage.StorageDeviceInfo = info
	}
	service := &iscsiService{a: a}
	service.Self = iscsiServiceRef
	m.Map().Put(service)
	routeMethods(m, func(ctx *simulator.Context, method *simulator.Method) {
		switch method.Name {
		case "AddInternetScsiStaticTargets", "AddInternetScsiSendTargets", "RescanHba":
			if _, ok := ctx.Map.Get(method.This).(*simulator.HostStorageSystem); ok {
				method.This = iscsiServiceRef
			}
		}
	})
}

// hostOf returns the host of a storage system and its storage device
// info, or ManagedObjectNotFound for the storage system if either is gone.
func hostOf(ctx *simulator.Context, ref types.ManagedObjectReference) (*simulator.HostSystem, *types.HostStorageDeviceInfo, *soap.Fault) {
	storage, fault := lookup[*simulator.HostStorageSystem](ctx, ref)
	if fault != nil {
		return nil, nil, fault
	}
	if storage.Host == nil {
		return nil, nil, notFound(ref)
	}
	host, ok := ctx.Map.Get(storage.Host.Self).(*simulator.HostSystem)
	if !ok {
		return nil, nil, notFound(ref)
	}
	return host, host.Config.StorageDevice, nil
}

func softwareHba(info *types.HostStorageDeviceInfo, device string) *types.HostInternetScsiHba {
	for _, hba := range info.HostBusAdapter {
		if h, ok := hba.(*types.HostInternetScsiHba); ok && h.Device == device {
			return h
		}
	}
	return nil
}

func (s *iscsiService) AddInternetScsiStaticTargets(ctx *simulator.Context, req *types.AddInternetScsiStaticTargets) soap.HasFault {
	body := new(methods.AddInternetScsiStaticTargetsBody)
	host, info, fault := hostOf(ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	ctx.WithLock(host, func() {
		hba := softwareHba(info, req.IScsiHbaDevice)
		if hba == nil {
			body.Fault_ = simulator.Fault("", &types.NotFound{})
			return
		}
		for _, t := range req.Targets {
			known := false
			for _, c := range hba.ConfiguredStaticTarget {
				known = known || (c.Address == t.Address && c.Port == t.Port && c.IScsiName == t.IScsiName)
			}
			if !known {
				hba.ConfiguredStaticTarget = append(hba.ConfiguredStaticTarget, t)
			}
		}
	})
	if body.Fault_ != nil {
		return body
	}
	body.Res = new(types.AddInternetScsiStaticTargetsResponse)
	return body
}

func (s *iscsiService) AddInternetScsiSendTargets(ctx *simulator.Context, req *types.AddInternetScsiSendTargets) soap.HasFault {
	body := new(methods.AddInternetScsiSendTargetsBody)
	host, info, fault := hostOf(ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	ctx.WithLock(host, func() {
		if hba := softwareHba(info, req.IScsiHbaDevice); hba != nil {
			hba.ConfiguredSendTarget = append(hba.ConfiguredSendTarget, req.Targets...)
		}
	})
	body.Res = new(types.AddInternetScsiSendTargetsResponse)
	return body
}

// RescanHba finds the LUNs of the adapter's targets: its static targets,
// and every target of the array behind a send-target (discovery) portal.
func (s *iscsiService) RescanHba(ctx *simulator.Context, req *types.RescanHba) soap.HasFault {
	body := new(methods.RescanHbaBody)
	host, info, fault := hostOf(ctx, req.This)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	s.a.mu.Lock()
	targets := append([]iscsiTarget(nil), s.a.targets...)
	s.a.mu.Unlock()
	ctx.WithLock(host, func() {
		hba := softwareHba(info, req.HbaDevice)
		if hba == nil {
			return
		}
		for _, t := range targets {
			if reachable(hba, t) {
				addTarget(info, hba, t)
			}
		}
	})
	body.Res = new(types.RescanHbaResponse)
	return body
}

func reachable(hba *types.HostInternetScsiHba, t iscsiTarget) bool {
	for _, c := range hba.ConfiguredStaticTarget {
		if fmt.Sprintf("%s:%d", c.Address, c.Port) == t.Portal && c.IScsiName == t.IQN {
			return true
		}
	}
	for _, c := range hba.ConfiguredSendTarget {
		if fmt.Sprintf("%s:%d", c.Address, c.Port) == t.Portal {
			return true
		}
	}
	return false
}

func addTarget(info *types.HostStorageDeviceInfo, hba *types.HostInternetScsiHba, t iscsiTarget) {
	var adapter *types.HostScsiTopologyInterface
	for i := range info.ScsiTopology.Adapter {
		if info.ScsiTopology.Adapter[i].Adapter == hba.Key {
			adapter = &info.ScsiTopology.Adapter[i]
		}
	}
	if adapter == nil {
		return
	}
	var target *types.HostScsiTopologyTarget
	for i := range adapter.Target {
		tr, ok := adapter.Target[i].Transport.(*types.HostInternetScsiTargetTransport)
		if ok && tr.IScsiName == t.IQN && len(tr.Address) > 0 && tr.Address[0] == t.Portal {
			target = &adapter.Target[i]
		}
	}
	if target == nil {
		n := int32(len(adapter.Target))
		adapter.Target = append(adapter.Target, types.HostScsiTopologyTarget{
			Key:       fmt.Sprintf("key-vim.host.ScsiTopology.Target-%s:0:%d", hba.Device, n),
			Target:    n,
			Transport: &types.HostInternetScsiTargetTransport{IScsiName: t.IQN, Address: []string{t.Portal}},
		})
		target = &adapter.Target[len(adapter.Target)-1]
	}
	for _, lun := range t.Luns {
		key := "key-vim.host.ScsiDisk-" + lun.UUID
		found := false
		for _, l := range target.Lun {
			found = found || l.ScsiLun == key
		}
		if found {
			continue
		}
		target.Lun = append(target.Lun, types.HostScsiTopologyLun{
			Key: fmt.Sprintf("%s-lun%d", target.Key, lun.Lun), Lun: lun.Lun, ScsiLun: key,
		})
		known := false
		for _, l := range info.ScsiLun {
			known = known || l.GetScsiLun().Key == key
		}
		if known {
			continue
		}
		name := "naa." + strings.ToLower(strings.ReplaceAll(lun.UUID, "-", ""))
		info.ScsiLun = append(info.ScsiLun, &types.HostScsiDisk{
			ScsiLun: types.ScsiLun{
				HostDevice: types.HostDevice{
					DeviceName: "/vmfs/devices/disks/" + name, DeviceType: "disk",
				},
				Key: key, Uuid: lun.UUID, CanonicalName: name, LunType: "disk",
				OperationalState: []string{"ok"},
			},
			Capacity:   types.HostDiskDimensionsLba{BlockSize: 512, Block: lun.Blocks},
			DevicePath: "/vmfs/devices/disks/" + name,
		})
	}
}

func (a *iscsiArray) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != iscsiTargetsPath {
			next.ServeHTTP(w, r)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"targets": a.targets})
		case http.MethodPost:
			var t iscsiTarget
			if err := decodeJSON(r, &t); err != nil || t.Portal == "" || t.IQN == "" {
				badRequest(w, `want {"portal": "addr:port", "iqn": name, "luns": [{"lun", "uuid", "blocks"}]}`)
				return
			}
			a.targets = append(a.targets, t)
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			a.targets = nil
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}
