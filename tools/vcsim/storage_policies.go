package main

// Storage policies (SPBM): govmomi's PBM simulator on /pbm and /pbm/sdk,
// with the answers a test of policy-based placement needs.
//
// govmomi's vcsim main registers the PBM simulator with a blank import of
// github.com/vmware/govmomi/pbm/simulator and Service.RegisterEndpoints.
// We make its Registry ourselves (pbmsim.New) and register it under both
// paths (govmomi's client uses /pbm, pyVmomi's /pbm/sdk as vCenter
// documents it), so that we hold the Registry and can route its methods.
// Its profiles (vCenter 6.7's defaults, PbmCreate, PbmRetrieveContent,
// PbmQueryProfile) are kept as they are. Two answers are too poor to test
// placement, so they are ours:
//
//   - Compatibility (PbmCheckRequirements, PbmCheckCompatibility,
//     PbmQueryMatchingHub): the simulator calls every datastore compatible
//     with every policy. Here a policy's rule sets are evaluated against
//     the datastores' tags, as vCenter does tag-based placement rules:
//     capability namespace "http://www.vmware.com/storage/tag", the
//     capability id the tag category, its property value the tags (a
//     PbmCapabilityDiscreteSet) of which the datastore must carry one.
//     Rules of "com.vmware.storageprofile.dataservice" (I/O filters such
//     as encryption, applied by the hosts) hold on every datastore; rules
//     of any other namespace are a storage provider's (vSAN, VVol, PMem),
//     of which the simulator has none: no datastore satisfies them. A
//     policy without rules fits every datastore. Rule sets (sub-profiles)
//     are alternatives; the rules of one must all hold.
//   - Associations (PbmQueryAssociatedProfile(s)): the simulator
//     remembers none, and vcsim drops a ConfigSpec's vmProfile and a
//     device change's profile. Here CreateVM_Task, ReconfigVM_Task and
//     RelocateVM_Task (its spec.profile, the VM home's, and its disk
//     locators' profile) are watched: a VM home's and a disk's profile
//     are kept by the file they name (the .vmx, the .vmdk: the storage
//     object a policy applies to), and read back through the VM's current
//     files and devices. An entry is written before the call runs (a
//     failed call's stays, for a path no other VM names); a relocation
//     without a profile leaves the VM's as they are, as vCenter does. A
//     storage vMotion (relocate.go) moves the entries of the files it
//     moves to their new names (renameProfiles).
//
// Datastore tags live here, not in vCenter's tagging service (vAPI, REST):
//
//	GET /vcdriver/storage/tags              {"tags": {datastore: {category: [tag]}}}
//	PUT /vcdriver/storage/tags/<datastore>  {category: [tag, ...]}, all of
//	                                        the datastore's tags; {} removes
//	                                        them
//
// A datastore is named, as the NFS ones shared by datacenters are one
// export (datastores.go): its tags hold for every object of the name.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	"github.com/vmware/govmomi/pbm/methods"
	pbmsim "github.com/vmware/govmomi/pbm/simulator"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	storageTagsPath = "/vcdriver/storage/tags"
	// vCenter's namespace of tag-based placement rules.
	tagNamespace = "http://www.vmware.com/storage/tag"
	// Data service rules (I/O filters): the hosts apply them, any
	// datastore takes them.
	dataServiceNamespace = "com.vmware.storageprofile.dataservice"
)

// storagePolicies is the state of our PBM answers.
type storagePolicies struct {
	mu sync.Mutex
	// datastore name -> category -> tags
	tags map[string]map[string][]string
	// file ("[ds] dir/name.vmx" or ".vmdk") -> profile id
	profiles       map[string]string
	profileManager *pbmsim.ProfileManager
}

var (
	pbmSolverRef = types.ManagedObjectReference{Type: "PbmPlacementSolver", Value: "vcdriver-pbm-solver"}
	pbmAssocRef  = types.ManagedObjectReference{Type: "PbmProfileProfileManager", Value: "vcdriver-pbm-associations"}
	// In the vim Registry, so that a storage vMotion finds the
	// associations of its model to move.
	pbmRenameRef = types.ManagedObjectReference{Type: "VcdriverPbmRename", Value: "vcdriver-pbm-rename"}
)

// profileRenamer is the storage policies' handle in the vim Registry (a
// managed object there, as whatever walks the Registry expects).
type profileRenamer struct {
	mo.ExtensibleManagedObject
	p *storagePolicies
}

// installStoragePolicies registers the PBM endpoint with our answers and
// the tag control endpoint; it must run before Service.NewServer.
func installStoragePolicies(m *simulator.Model) (*storagePolicies, error) {
	reg := pbmsim.New()
	content := reg.Get(pbm.ServiceInstance).(*pbmsim.ServiceInstance).Content
	pm, ok := reg.Get(content.ProfileManager).(*pbmsim.ProfileManager)
	if !ok {
		return nil, fmt.Errorf("PBM simulator has no profile manager at %s", content.ProfileManager)
	}
	p := &storagePolicies{
		tags:           map[string]map[string][]string{},
		profiles:       map[string]string{},
		profileManager: pm,
	}
	solver := &pbmSolver{ManagedObjectReference: pbmSolverRef, p: p}
	associations := &pbmAssociations{ManagedObjectReference: pbmAssocRef, p: p}
	// The object a Registry Handler returns answers the call.
	reg.Handler = func(_ *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		switch method.Name {
		case "PbmCheckRequirements", "PbmCheckCompatibility", "PbmQueryMatchingHub":
			return solver, nil
		case "PbmQueryAssociatedProfile", "PbmQueryAssociatedProfiles":
			return associations, nil
		}
		return nil, nil
	}
	// pbmsim.New names its Path "/pbm"; vCenter's documented one is /pbm/sdk.
	m.Service.RegisterSDK(reg, reg.Path+"/sdk")
	m.Service.Handle(storageTagsPath, http.HandlerFunc(p.serveTags))
	m.Service.Handle(storageTagsPath+"/", http.HandlerFunc(p.serveTags))
	routeMethods(m, p.recordProfiles)
	renamer := &profileRenamer{p: p}
	renamer.Self = pbmRenameRef
	m.Map().Put(renamer)
	return p, nil
}

// --- datastore tags ---------------------------------------------------------

func (p *storagePolicies) serveTags(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, storageTagsPath), "/")
	switch {
	case r.Method == http.MethodGet && name == "":
		p.mu.Lock()
		body, _ := json.Marshal(map[string]any{"tags": p.tags})
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case r.Method == http.MethodPut && name != "":
		tags := map[string][]string{}
		if err := json.NewDecoder(r.Body).Decode(&tags); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		if len(tags) == 0 {
			delete(p.tags, name)
		} else {
			p.tags[name] = tags
		}
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "GET "+storageTagsPath+" or PUT "+storageTagsPath+"/<datastore>", http.StatusMethodNotAllowed)
	}
}

func (p *storagePolicies) hasTag(datastore, category string, wanted []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tag := range p.tags[datastore][category] {
		for _, w := range wanted {
			if tag == w {
				return true
			}
		}
	}
	return false
}

// --- compatibility ----------------------------------------------------------

// pbmSolver answers the placement methods in the simulator's place.
type pbmSolver struct {
	types.ManagedObjectReference
	p *storagePolicies
}

// profile is the capability profile of id, or the fault PBM answers for
// an unknown one (InvalidArgument).
func (s *pbmSolver) profile(id string) (*pbmtypes.PbmCapabilityProfile, *soap.Fault) {
	body := s.p.profileManager.PbmRetrieveContent(&pbmtypes.PbmRetrieveContent{
		ProfileIds: []pbmtypes.PbmProfileId{{UniqueId: id}},
	}).(*methods.PbmRetrieveContentBody)
	if body.Fault_ != nil {
		return nil, body.Fault_
	}
	for _, b := range body.Res.Returnval {
		if c, ok := b.(*pbmtypes.PbmCapabilityProfile); ok {
			return c, nil
		}
	}
	return nil, simulator.Fault("not a capability profile: "+id, &types.InvalidArgument{InvalidProperty: "profileId"})
}

// results are the hubs' compatibility with profile: every datastore
// hub asked for (all datastores when none is named), an Error on those
// that do not satisfy it.
func (s *pbmSolver) results(ctx *simulator.Context, hubs []pbmtypes.PbmPlacementHub, profile *pbmtypes.PbmCapabilityProfile) []pbmtypes.PbmPlacementCompatibilityResult {
	vimMap := ctx.For(vim25.Path).Map
	var datastores []*simulator.Datastore
	if len(hubs) == 0 {
		for _, e := range vimMap.All("Datastore") {
			datastores = append(datastores, e.(*simulator.Datastore))
		}
	}
	for _, h := range hubs {
		if h.HubType != "Datastore" {
			continue
		}
		ref := types.ManagedObjectReference{Type: h.HubType, Value: h.HubId}
		if ds, ok := vimMap.Get(ref).(*simulator.Datastore); ok {
			datastores = append(datastores, ds)
		}
	}
	var out []pbmtypes.PbmPlacementCompatibilityResult
	for _, ds := range datastores {
		result := pbmtypes.PbmPlacementCompatibilityResult{
			Hub: pbmtypes.PbmPlacementHub{HubType: ds.Self.Type, HubId: ds.Self.Value},
		}
		if why := s.p.unsatisfied(ds.Name, profile); why != "" {
			result.Error = []types.LocalizedMethodFault{{
				Fault:            &pbmtypes.PbmFault{},
				LocalizedMessage: fmt.Sprintf("Datastore %s does not satisfy policy %s: %s", ds.Name, profile.Name, why),
			}}
		}
		out = append(out, result)
	}
	return out
}

// unsatisfied is why a datastore does not satisfy profile, "" if it does.
func (p *storagePolicies) unsatisfied(datastore string, profile *pbmtypes.PbmCapabilityProfile) string {
	constraints, ok := profile.Constraints.(*pbmtypes.PbmCapabilitySubProfileConstraints)
	if !ok || len(constraints.SubProfiles) == 0 {
		return ""
	}
	var reasons []string
	for _, sub := range constraints.SubProfiles {
		why := p.unsatisfiedRuleSet(datastore, sub.Capability)
		if why == "" {
			return ""
		}
		reasons = append(reasons, why)
	}
	return strings.Join(reasons, "; ")
}

func (p *storagePolicies) unsatisfiedRuleSet(datastore string, rules []pbmtypes.PbmCapabilityInstance) string {
	for _, rule := range rules {
		switch ns := rule.Id.Namespace; {
		case ns == dataServiceNamespace:
			continue
		case ns == tagNamespace:
			tags := ruleValues(rule)
			if !p.hasTag(datastore, rule.Id.Id, tags) {
				return fmt.Sprintf("no tag %s of category %s", strings.Join(tags, " or "), rule.Id.Id)
			}
		default:
			return fmt.Sprintf("no storage provider of %s", ns)
		}
	}
	return ""
}

// ruleValues are the string values of a rule's properties (a discrete
// set's or a single one).
func ruleValues(rule pbmtypes.PbmCapabilityInstance) []string {
	var values []string
	for _, c := range rule.Constraint {
		for _, prop := range c.PropertyInstance {
			switch v := prop.Value.(type) {
			case pbmtypes.PbmCapabilityDiscreteSet:
				values = append(values, discreteStrings(v.Values)...)
			case *pbmtypes.PbmCapabilityDiscreteSet:
				values = append(values, discreteStrings(v.Values)...)
			case string:
				values = append(values, v)
			}
		}
	}
	return values
}

func discreteStrings(values []types.AnyType) []string {
	var out []string
	for _, v := range values {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func requirementProfile(reqs []pbmtypes.BasePbmPlacementRequirement) string {
	for _, r := range reqs {
		if c, ok := r.(*pbmtypes.PbmPlacementCapabilityProfileRequirement); ok {
			return c.ProfileId.UniqueId
		}
	}
	return ""
}

func (s *pbmSolver) PbmCheckRequirements(ctx *simulator.Context, req *pbmtypes.PbmCheckRequirements) soap.HasFault {
	body := new(methods.PbmCheckRequirementsBody)
	id := requirementProfile(req.PlacementSubjectRequirement)
	if id == "" {
		// Requirements without a profile: any datastore.
		body.Res = &pbmtypes.PbmCheckRequirementsResponse{
			Returnval: s.results(ctx, req.HubsToSearch, &pbmtypes.PbmCapabilityProfile{}),
		}
		return body
	}
	profile, fault := s.profile(id)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = &pbmtypes.PbmCheckRequirementsResponse{Returnval: s.results(ctx, req.HubsToSearch, profile)}
	return body
}

func (s *pbmSolver) PbmCheckCompatibility(ctx *simulator.Context, req *pbmtypes.PbmCheckCompatibility) soap.HasFault {
	body := new(methods.PbmCheckCompatibilityBody)
	profile, fault := s.profile(req.Profile.UniqueId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = &pbmtypes.PbmCheckCompatibilityResponse{Returnval: s.results(ctx, req.HubsToSearch, profile)}
	return body
}

func (s *pbmSolver) PbmQueryMatchingHub(ctx *simulator.Context, req *pbmtypes.PbmQueryMatchingHub) soap.HasFault {
	body := new(methods.PbmQueryMatchingHubBody)
	profile, fault := s.profile(req.Profile.UniqueId)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = new(pbmtypes.PbmQueryMatchingHubResponse)
	for _, r := range s.results(ctx, req.HubsToSearch, profile) {
		if len(r.Error) == 0 {
			body.Res.Returnval = append(body.Res.Returnval, r.Hub)
		}
	}
	return body
}

// --- associations -----------------------------------------------------------

// recordProfiles keeps the profiles a CreateVM_Task or ReconfigVM_Task
// gives the VM home and disks, by file.
func (p *storagePolicies) recordProfiles(ctx *simulator.Context, method *simulator.Method) {
	switch req := method.Body.(type) {
	case *types.CreateVM_Task:
		home := vmxPath(req.Config.Files, req.Config.Name)
		p.setProfile(home, definedProfile(req.Config.VmProfile), true)
		p.recordDisks(req.Config.DeviceChange)
	case *types.ReconfigVM_Task:
		if len(req.Spec.VmProfile) != 0 {
			if vm, ok := ctx.Map.Get(req.This).(*simulator.VirtualMachine); ok {
				var home string
				ctx.WithLock(vm, func() {
					if vm.Config != nil {
						home = vm.Config.Files.VmPathName
					}
				})
				p.setProfile(home, definedProfile(req.Spec.VmProfile), true)
			}
		}
		p.recordDisks(req.Spec.DeviceChange)
	case *types.RelocateVM_Task:
		p.recordRelocation(ctx, req)
	}
}

// recordRelocation keeps the profiles a RelocateVM_Task gives the VM home
// (spec.profile) and its disks (their locators' profile), by the files
// they name now; a storage vMotion then moves them with the files.
func (p *storagePolicies) recordRelocation(ctx *simulator.Context, req *types.RelocateVM_Task) {
	vm, ok := ctx.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var home string
	disks := map[int32]string{}
	ctx.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		home = vm.Config.Files.VmPathName
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
					disks[disk.Key] = b.GetVirtualDeviceFileBackingInfo().FileName
				}
			}
		}
	})
	p.setProfile(home, definedProfile(req.Spec.Profile), len(req.Spec.Profile) != 0)
	for _, l := range req.Spec.Disk {
		p.setProfile(disks[l.DiskId], definedProfile(l.Profile), len(l.Profile) != 0)
	}
}

// renameProfiles moves the profiles of files a storage vMotion moved
// (old name -> new name) to their new names.
func renameProfiles(ctx *simulator.Context, renamed map[string]string) {
	r, ok := ctx.Map.Get(pbmRenameRef).(*profileRenamer)
	if !ok {
		return
	}
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	moved := map[string]string{}
	for old, name := range renamed {
		var from, to object.DatastorePath
		if old == name || !from.FromString(old) || !to.FromString(name) {
			continue
		}
		if id, ok := p.profiles[from.String()]; ok {
			delete(p.profiles, from.String())
			moved[to.String()] = id
		}
	}
	for name, id := range moved {
		p.profiles[name] = id
	}
}

func (p *storagePolicies) recordDisks(changes []types.BaseVirtualDeviceConfigSpec) {
	for _, c := range changes {
		spec := c.GetVirtualDeviceConfigSpec()
		disk, ok := spec.Device.(*types.VirtualDisk)
		if !ok {
			continue
		}
		file, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		name := file.GetVirtualDeviceFileBackingInfo().FileName
		switch spec.Operation {
		case types.VirtualDeviceConfigSpecOperationAdd:
			// A disk added without a profile has none (vCenter: the
			// datastore's default).
			p.setProfile(name, definedProfile(spec.Profile), true)
		case types.VirtualDeviceConfigSpecOperationEdit:
			p.setProfile(name, definedProfile(spec.Profile), len(spec.Profile) != 0)
		case types.VirtualDeviceConfigSpecOperationRemove:
			if spec.FileOperation == types.VirtualDeviceConfigSpecFileOperationDestroy {
				p.setProfile(name, "", true)
			}
		}
	}
}

// setProfile sets (or, with id "", clears) the profile of file when
// change.
func (p *storagePolicies) setProfile(file, id string, change bool) {
	var path object.DatastorePath
	if !change || !path.FromString(file) || path.Path == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id == "" {
		delete(p.profiles, path.String())
	} else {
		p.profiles[path.String()] = id
	}
}

func (p *storagePolicies) profileOf(file string) string {
	var path object.DatastorePath
	if !path.FromString(file) {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.profiles[path.String()]
}

// definedProfile is the profile id of a VirtualMachineDefinedProfileSpec
// among specs, "" for none (or an empty profile spec).
func definedProfile(specs []types.BaseVirtualMachineProfileSpec) string {
	for _, s := range specs {
		if d, ok := s.(*types.VirtualMachineDefinedProfileSpec); ok {
			return d.ProfileId
		}
	}
	return ""
}

// vmxPath is where vcsim puts a new VM's .vmx: the path given, else
// "<name>.vmx" in the folder given, or in a folder "<name>" on a
// datastore given alone (vcsim renames a folder that exists already:
// such a VM's home is not found).
func vmxPath(files *types.VirtualMachineFileInfo, name string) string {
	if files == nil {
		return ""
	}
	var vmx object.DatastorePath
	if !vmx.FromString(files.VmPathName) {
		return ""
	}
	if path.Ext(vmx.Path) != ".vmx" {
		dir := strings.TrimSuffix(vmx.Path, "/")
		if dir == "" {
			dir = name
		}
		vmx.Path = path.Join(dir, name+".vmx")
	}
	return vmx.String()
}

// pbmAssociations answers which profile a VM home or disk has.
type pbmAssociations struct {
	types.ManagedObjectReference
	p *storagePolicies
}

// associated is the profile of a PBM object: a VM ("virtualMachine",
// key vm-N) or one of its disks ("virtualDiskId", key vm-N:<device key>).
func (a *pbmAssociations) associated(ctx *simulator.Context, entity pbmtypes.PbmServerObjectRef) []pbmtypes.PbmProfileId {
	vmKey, deviceKey, _ := strings.Cut(entity.Key, ":")
	vimCtx := ctx.For(vim25.Path)
	vm, ok := vimCtx.Map.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: vmKey}).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	var file string
	vimCtx.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		switch entity.ObjectType {
		case string(pbmtypes.PbmObjectTypeVirtualMachine):
			file = vm.Config.Files.VmPathName
		case string(pbmtypes.PbmObjectTypeVirtualDiskId):
			for _, d := range vm.Config.Hardware.Device {
				disk, ok := d.(*types.VirtualDisk)
				if !ok || fmt.Sprint(disk.Key) != deviceKey {
					continue
				}
				if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
					file = b.GetVirtualDeviceFileBackingInfo().FileName
				}
			}
		}
	})
	if id := a.p.profileOf(file); id != "" {
		return []pbmtypes.PbmProfileId{{UniqueId: id}}
	}
	return nil
}

func (a *pbmAssociations) PbmQueryAssociatedProfile(ctx *simulator.Context, req *pbmtypes.PbmQueryAssociatedProfile) soap.HasFault {
	return &methods.PbmQueryAssociatedProfileBody{
		Res: &pbmtypes.PbmQueryAssociatedProfileResponse{Returnval: a.associated(ctx, req.Entity)},
	}
}

func (a *pbmAssociations) PbmQueryAssociatedProfiles(ctx *simulator.Context, req *pbmtypes.PbmQueryAssociatedProfiles) soap.HasFault {
	res := new(pbmtypes.PbmQueryAssociatedProfilesResponse)
	for _, e := range req.Entities {
		res.Returnval = append(res.Returnval, pbmtypes.PbmQueryProfileResult{Object: e, ProfileId: a.associated(ctx, e)})
	}
	return &methods.PbmQueryAssociatedProfilesBody{Res: res}
}
