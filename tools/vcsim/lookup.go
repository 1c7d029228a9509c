package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// lookup finds the object ref names in the caller's registry, as a T. If
// there is none (it went away since the call was routed to us), or it is
// of another type, it returns the fault vCenter answers for a stale moref.
func lookup[T mo.Reference](ctx *simulator.Context, ref types.ManagedObjectReference) (T, *soap.Fault) {
	obj, ok := ctx.Map.Get(ref).(T)
	if !ok {
		return obj, notFound(ref)
	}
	return obj, nil
}

// notFound is the ManagedObjectNotFound fault for ref.
func notFound(ref types.ManagedObjectReference) *soap.Fault {
	return simulator.Fault("", &types.ManagedObjectNotFound{Obj: ref})
}
