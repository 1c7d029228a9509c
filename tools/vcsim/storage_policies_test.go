package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// tagPolicy is a tag-based policy as vCenter makes one: a datastore with
// tag of category qualifies.
func tagPolicy(name, category, tag string) pbmtypes.PbmCapabilityProfileCreateSpec {
	return pbmtypes.PbmCapabilityProfileCreateSpec{
		Name:         name,
		Category:     string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT),
		ResourceType: pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)},
		Constraints: &pbmtypes.PbmCapabilitySubProfileConstraints{
			SubProfiles: []pbmtypes.PbmCapabilitySubProfile{{
				Name: "tags",
				Capability: []pbmtypes.PbmCapabilityInstance{{
					Id: pbmtypes.PbmCapabilityMetadataUniqueId{Namespace: tagNamespace, Id: category},
					Constraint: []pbmtypes.PbmCapabilityConstraintInstance{{
						PropertyInstance: []pbmtypes.PbmCapabilityPropertyInstance{{
							Id:    "com.vmware.storage.tag." + category + ".property",
							Value: pbmtypes.PbmCapabilityDiscreteSet{Values: []types.AnyType{tag}},
						}},
					}},
				}},
			}},
		},
	}
}

func putTags(t *testing.T, v *testVCenter, datastore, body string) {
	t.Helper()
	u := *v.inst.server.URL
	u.User = nil
	u.Path = storageTagsPath + "/" + datastore
	req, _ := http.NewRequest(http.MethodPut, u.String(), strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT %s: %s", u.Path, res.Status)
	}
}

func hubNames(t *testing.T, v *testVCenter, hubs []pbmtypes.PbmPlacementHub) []string {
	t.Helper()
	var names []string
	for _, h := range hubs {
		var ds mo.Datastore
		ref := types.ManagedObjectReference{Type: h.HubType, Value: h.HubId}
		if err := v.c.RetrieveOne(context.Background(), ref, []string{"name"}, &ds); err != nil {
			t.Fatal(err)
		}
		names = append(names, ds.Name)
	}
	return names
}

func TestStoragePolicyCompatibilityFollowsTags(t *testing.T) {
	ctx := context.Background()
	v := newTestVCenter(t, "-nfs", "2")
	c, err := pbm.NewClient(ctx, v.c.Client)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateProfile(ctx, tagPolicy("gold", "tier", "gold"))
	if err != nil {
		t.Fatal(err)
	}
	putTags(t, v, "nfs1", `{"tier": ["gold"]}`)
	putTags(t, v, "nfs0", `{"tier": ["silver"]}`)

	req := []pbmtypes.BasePbmPlacementRequirement{&pbmtypes.PbmPlacementCapabilityProfileRequirement{ProfileId: *id}}
	res, err := c.CheckRequirements(ctx, nil, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := hubNames(t, v, res.CompatibleDatastores()); len(got) != 1 || got[0] != "nfs1" {
		t.Errorf("compatible with gold: %v, want [nfs1]", got)
	}
	if got := hubNames(t, v, res.NonCompatibleDatastores()); len(got) != 1 || got[0] != "nfs0" {
		t.Errorf("not compatible with gold: %v, want [nfs0]", got)
	}

	// vSAN's default policy asks for a storage provider there is none of.
	vsan, err := c.ProfileIDByName(ctx, "vSAN Default Storage Policy")
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.CheckRequirements(ctx, nil, nil, []pbmtypes.BasePbmPlacementRequirement{
		&pbmtypes.PbmPlacementCapabilityProfileRequirement{ProfileId: pbmtypes.PbmProfileId{UniqueId: vsan}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.CompatibleDatastores(); len(got) != 0 {
		t.Errorf("compatible with vSAN's policy: %v, want none", hubNames(t, v, got))
	}

	// Tags taken off: gold fits nowhere.
	putTags(t, v, "nfs1", `{}`)
	res, err = c.CheckRequirements(ctx, nil, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.CompatibleDatastores(); len(got) != 0 {
		t.Errorf("compatible with gold untagged: %v", hubNames(t, v, got))
	}

	if _, err := c.CheckRequirements(ctx, nil, nil, []pbmtypes.BasePbmPlacementRequirement{
		&pbmtypes.PbmPlacementCapabilityProfileRequirement{ProfileId: pbmtypes.PbmProfileId{UniqueId: "no-such-policy"}}}); err == nil {
		t.Error("an unknown policy was answered")
	}
}

func TestStoragePolicyAssociationsOfHomeAndDisks(t *testing.T) {
	ctx := context.Background()
	v := newTestVCenter(t)
	c, err := pbm.NewClient(ctx, v.c.Client)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateProfile(ctx, tagPolicy("gold", "tier", "gold"))
	if err != nil {
		t.Fatal(err)
	}
	finder := find.NewFinder(v.c.Client, true)
	folder, err := finder.Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources")
	if err != nil {
		t.Fatal(err)
	}
	profile := []types.BaseVirtualMachineProfileSpec{&types.VirtualMachineDefinedProfileSpec{ProfileId: id.UniqueId}}
	spec := types.VirtualMachineConfigSpec{
		Name: "policed", GuestId: "otherGuest", NumCPUs: 1, MemoryMB: 64,
		Files:     &types.VirtualMachineFileInfo{VmPathName: "[nfs0] policed/"},
		VmProfile: profile,
	}
	task, err := folder.CreateVM(ctx, spec, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(v.c.Client, info.Result.(types.ManagedObjectReference))

	devices, err := vm.Device(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scsi, err := devices.CreateSCSIController("lsilogic")
	if err != nil {
		t.Fatal(err)
	}
	scsi.(types.BaseVirtualDevice).GetVirtualDevice().Key = -100
	disk := func(key int32, name string) *types.VirtualDisk {
		return &types.VirtualDisk{
			VirtualDevice: types.VirtualDevice{
				Key: key, ControllerKey: -100, UnitNumber: types.NewInt32(key + 202),
				Backing: &types.VirtualDiskFlatVer2BackingInfo{
					VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[nfs0] policed/" + name},
					DiskMode:                     string(types.VirtualDiskModePersistent),
					ThinProvisioned:              types.NewBool(true),
				},
			},
			CapacityInKB: 1024,
		}
	}
	add := types.VirtualDeviceConfigSpecOperationAdd
	create := types.VirtualDeviceConfigSpecFileOperationCreate
	task, err = vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: add, Device: scsi},
		&types.VirtualDeviceConfigSpec{Operation: add, FileOperation: create, Device: disk(-201, "root.vmdk"), Profile: profile},
		&types.VirtualDeviceConfigSpec{Operation: add, FileOperation: create, Device: disk(-200, "plain.vmdk")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	home := pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualMachine), Key: vm.Reference().Value}
	got, err := c.QueryAssociatedProfile(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].UniqueId != id.UniqueId {
		t.Errorf("VM home's profiles: %v, want [%s]", got, id.UniqueId)
	}
	devices, err = vm.Device(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string][]pbmtypes.PbmProfileId{}
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		key := vm.Reference().Value + ":" + strconv.Itoa(int(d.GetVirtualDevice().Key))
		got, err := c.QueryAssociatedProfile(ctx, pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualDiskId), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		byFile[d.GetVirtualDevice().Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName] = got
	}
	if p := byFile["[nfs0] policed/root.vmdk"]; len(p) != 1 || p[0].UniqueId != id.UniqueId {
		t.Errorf("root disk's profiles: %v (all: %v)", p, byFile)
	}
	if p, ok := byFile["[nfs0] policed/plain.vmdk"]; !ok || len(p) != 0 {
		t.Errorf("plain disk's profiles: %v, present %v, want none", p, ok)
	}
}

// TestStoragePolicyFollowsRelocation: a RelocateVM_Task's spec.profile
// and disk locators' profile become the VM home's and the disk's, by
// their new files after a storage vMotion; a relocation without a
// profile leaves them as they are, through the files' next move.
func TestStoragePolicyFollowsRelocation(t *testing.T) {
	ctx := context.Background()
	f := newStorageVMotionFixture(t)
	c, err := pbm.NewClient(ctx, f.c.Client)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateProfile(ctx, tagPolicy("gold", "tier", "gold"))
	if err != nil {
		t.Fatal(err)
	}
	devices, err := f.vm.Device(ctx)
	if err != nil {
		t.Fatal(err)
	}
	disk := devices.SelectByType((*types.VirtualDisk)(nil))[0].GetVirtualDevice()
	finder, _ := dcFinder(t, f.c)
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C1/Resources")
	if err != nil {
		t.Fatal(err)
	}
	host, err := finder.HostSystem(ctx, "/DC0/host/DC0_C1/*")
	if err != nil {
		t.Fatal(err)
	}
	relocate := func(ds string, profile []types.BaseVirtualMachineProfileSpec) {
		t.Helper()
		datastore, err := finder.Datastore(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		hostRef, poolRef, dsRef := host.Reference(), pool.Reference(), datastore.Reference()
		task, err := f.vm.Relocate(ctx, types.VirtualMachineRelocateSpec{
			Host: &hostRef, Pool: &poolRef, Datastore: &dsRef, Profile: profile,
			Disk: []types.VirtualMachineRelocateSpecDiskLocator{{DiskId: disk.Key, Datastore: dsRef, Profile: profile}},
		}, types.VirtualMachineMovePriorityDefaultPriority)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	profiles := func() (home, root []pbmtypes.PbmProfileId) {
		t.Helper()
		home, err := c.QueryAssociatedProfile(ctx, pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualMachine), Key: f.vm.Reference().Value})
		if err != nil {
			t.Fatal(err)
		}
		root, err = c.QueryAssociatedProfile(ctx, pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualDiskId), Key: f.vm.Reference().Value + ":" + strconv.Itoa(int(disk.Key))})
		if err != nil {
			t.Fatal(err)
		}
		return home, root
	}
	want := func(when string, ids ...string) {
		t.Helper()
		home, root := profiles()
		for what, got := range map[string][]pbmtypes.PbmProfileId{"home": home, "disk": root} {
			var names []string
			for _, p := range got {
				names = append(names, p.UniqueId)
			}
			if strings.Join(names, ",") != strings.Join(ids, ",") {
				t.Errorf("%s: the %s's profiles are %v, want %v", when, what, names, ids)
			}
		}
	}
	want("before")
	relocate("ds-DC0_C1", []types.BaseVirtualMachineProfileSpec{&types.VirtualMachineDefinedProfileSpec{ProfileId: id.UniqueId}})
	want("moved with the profile", id.UniqueId)
	relocate("nfs0", nil)
	want("moved again without one", id.UniqueId)
}
