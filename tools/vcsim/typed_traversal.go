package main

import (
	"reflect"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Type-checked PropertyCollector traversal (-typed-traversal).
//
// vCenter follows a TraversalSpec only from objects of its type (or a
// subtype); vcsim follows it from any object that has a field of that
// name. oslo.vmware's recursive inventory spec (vim_util.get_objects, used
// by the in-tree Nova driver) then loops: rp_to_rp (ResourcePool
// .resourcePool) applied to a VirtualMachine leads to its pool, rp_to_vm
// back to the VM, and so on until vcsim dies of a stack overflow.
//
// typedPC replaces the PropertyCollector singleton (vcsim clones its type
// for every session). RetrieveProperties(Ex) walk the selection specs
// themselves, type-checked; when vcsim's walk would differ (a spec would
// be followed from an object of another type and find something), the
// request is rewritten to name the objects the typed walk reached, in the
// same order, without selection specs. Other requests, such as every
// type-correct one, go to vcsim unchanged. Property filters
// (WaitForUpdatesEx) are not covered.
type typedPC struct {
	simulator.PropertyCollector
}

func installTypedTraversal(m *simulator.Model) {
	ref := m.ServiceContent.PropertyCollector
	if ref.Value == "" {
		ref = types.ManagedObjectReference{Type: "PropertyCollector", Value: "propertyCollector"}
	}
	pc := &typedPC{}
	pc.Self = ref
	m.Map().Put(pc)
}

func (pc *typedPC) RetrievePropertiesEx(ctx *simulator.Context, r *types.RetrievePropertiesEx) soap.HasFault {
	if specs, ok := typedSpecs(ctx, r.SpecSet); ok {
		req := *r
		req.SpecSet = specs
		r = &req
	}
	return pc.PropertyCollector.RetrievePropertiesEx(ctx, r)
}

func (pc *typedPC) RetrieveProperties(ctx *simulator.Context, r *types.RetrieveProperties) soap.HasFault {
	specs, ok := typedSpecs(ctx, r.SpecSet)
	if !ok {
		return pc.PropertyCollector.RetrieveProperties(ctx, r)
	}
	res := pc.PropertyCollector.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{This: r.This, SpecSet: specs})
	body := &methods.RetrievePropertiesBody{}
	if f := res.Fault(); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.RetrievePropertiesResponse{}
	if ret := res.(*methods.RetrievePropertiesExBody).Res.Returnval; ret != nil {
		body.Res.Returnval = ret.Objects
	}
	return body
}

// walk is one type-checked traversal of a request's object specs.
type walk struct {
	ctx     *simulator.Context
	specs   map[string]*types.TraversalSpec
	seen    map[walkStep]bool
	refs    []types.ManagedObjectReference
	differs bool // vcsim's untyped walk would reach more
	unsure  bool // something this walk does not model: leave the request alone
}

type walkStep struct {
	obj  types.ManagedObjectReference
	spec *types.TraversalSpec
}

// typedSpecs returns the rewritten specs and true, or false when the
// request is best left to vcsim as it is.
func typedSpecs(ctx *simulator.Context, specSet []types.PropertyFilterSpec) ([]types.PropertyFilterSpec, bool) {
	w := &walk{ctx: ctx, specs: map[string]*types.TraversalSpec{}, seen: map[walkStep]bool{}}
	var roots []types.ObjectSpec
	var props []types.PropertySpec
	for _, spec := range specSet {
		props = append(props, spec.PropSet...)
		for _, o := range spec.ObjectSet {
			obj, ok := w.get(o.Obj)
			if !ok {
				return nil, false // vcsim reports or faults it
			}
			if o.SelectSet == nil || !isTrue(o.Skip) {
				roots = append(roots, types.ObjectSpec{Obj: o.Obj})
			}
			w.selectSet(obj, o.SelectSet)
		}
	}
	if w.unsure || !w.differs {
		return nil, false
	}
	objects := roots
	for _, ref := range w.refs {
		objects = append(objects, types.ObjectSpec{Obj: ref})
	}
	return []types.PropertyFilterSpec{{
		PropSet:                       props,
		ObjectSet:                     objects,
		ReportMissingObjectsInResults: specSet[0].ReportMissingObjectsInResults,
	}}, true
}

func isTrue(b *bool) bool { return b != nil && *b }

// get returns the mo-level struct of a reference (as vcsim's getObject
// does: the session's objects first, wrappers unwrapped).
func (w *walk) get(ref types.ManagedObjectReference) (reflect.Value, bool) {
	var obj mo.Reference
	if w.ctx.Session != nil {
		obj = w.ctx.Session.Get(ref)
	} else {
		obj = w.ctx.Map.Get(ref)
	}
	if obj == nil {
		return reflect.Value{}, false
	}
	if o, ok := obj.(interface{ Get() mo.Reference }); ok {
		obj = o.Get()
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	v = v.Elem()
	for v.Type().PkgPath() != moPkg {
		if v.NumField() == 0 || !v.Type().Field(0).Anonymous || v.Field(0).Kind() != reflect.Struct {
			break
		}
		v = v.Field(0)
	}
	return v, true
}

var moPkg = reflect.TypeOf(mo.Folder{}).PkgPath()

// isA reports whether a mo struct is of the named managed type or a
// subtype (an embedded base struct of that name).
func isA(v reflect.Value, name string) bool {
	t := v.Type()
	for {
		if t.Name() == name {
			return true
		}
		if t.Kind() != reflect.Struct || t.NumField() == 0 || !t.Field(0).Anonymous || t.Field(0).Type.Kind() != reflect.Struct {
			return false
		}
		t = t.Field(0).Type
	}
}

func (w *walk) selectSet(obj reflect.Value, set []types.BaseSelectionSpec) {
	for _, ss := range set {
		if ts, ok := ss.(*types.TraversalSpec); ok && ts.Name != "" {
			w.specs[ts.Name] = ts
		}
	}
	for _, ss := range set {
		ts, ok := ss.(*types.TraversalSpec)
		if !ok {
			if ts = w.specs[ss.GetSelectionSpec().Name]; ts == nil {
				w.unsure = true // vcsim answers InvalidArgument
				return
			}
		}
		refs, ok := w.field(obj, ts.Path)
		if !ok {
			w.unsure = true
			return
		}
		if !isA(obj, ts.Type) {
			if len(refs) > 0 {
				w.differs = true
			}
			continue
		}
		self := obj.FieldByName("Self")
		if self.IsValid() {
			step := walkStep{self.Interface().(types.ManagedObjectReference), ts}
			if w.seen[step] {
				continue
			}
			w.seen[step] = true
		}
		for _, ref := range refs {
			if !isTrue(ts.Skip) {
				w.refs = append(w.refs, ref)
			}
			if next, ok := w.get(ref); ok {
				w.selectSet(next, ts.SelectSet)
			}
		}
	}
}

// field returns the references a one-level property path holds (what
// vcsim follows: a reference, a pointer to one or a list of them); false
// for paths this walk does not model (nested ones).
func (w *walk) field(obj reflect.Value, path string) ([]types.ManagedObjectReference, bool) {
	if path == "" || strings.ContainsAny(path, ".[") {
		return nil, false
	}
	f := obj.FieldByName(strings.ToUpper(path[:1]) + path[1:])
	if !f.IsValid() {
		return nil, true // no such field: nothing to follow (as vcsim)
	}
	switch v := f.Interface().(type) {
	case types.ManagedObjectReference:
		return []types.ManagedObjectReference{v}, true
	case *types.ManagedObjectReference:
		if v == nil {
			return nil, true
		}
		return []types.ManagedObjectReference{*v}, true
	case []types.ManagedObjectReference:
		return append([]types.ManagedObjectReference(nil), v...), true
	}
	return nil, true // other values hold no references vcsim follows
}
