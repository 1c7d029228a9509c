package main

// task_fail, task_hang: the task a matching call makes is taken over as
// vcsim puts it in the Registry.

import (
	"context"
	"strconv"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type pendingTask struct {
	rule *faultRule
	ctx  *simulator.Context // the call's: the task runs on its behalf
	at   time.Time
}

// taskFaults is faults as a Registry handler: it sees each Task put in the
// Registry by Task.Run, synchronously, before the task's goroutine starts.
type taskFaults faults

func (*taskFaults) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VcdriverFaults", Value: "taskFaults"}
}

func (*taskFaults) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}

func (*taskFaults) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

// PutObject takes over a task whose call a task_fail or task_hang rule
// fired for: the task's entity is the called object (vcsim's tasks are
// made on method.This). The oldest pending entry of that object is taken;
// one older than 10 s belonged to a call that made no task.
//
// Task.Run holds the entity's lock while the task runs, which would block
// every call on the object and every PropertyCollector read of it during
// a hang. So the task gets a private lock object as entity for as long as
// Run needs it; the wrapped Execute gives the real entity back and takes
// its lock (on behalf of the call, as Run does) only around the real work.
func (t *taskFaults) PutObject(_ *simulator.Context, obj mo.Reference) {
	task, ok := obj.(*simulator.Task)
	if !ok || task.Info.Entity == nil {
		return
	}
	f := (*faults)(t)
	entity := *task.Info.Entity
	f.mu.Lock()
	var p *pendingTask
	queue := f.pending[entity]
	for len(queue) > 0 && p == nil {
		if time.Since(queue[0].at) < 10*time.Second {
			p = queue[0]
		}
		queue = queue[1:]
	}
	if len(queue) == 0 {
		delete(f.pending, entity)
	} else {
		f.pending[entity] = queue
	}
	f.mu.Unlock()
	if p == nil {
		return
	}
	lock := types.ManagedObjectReference{Type: "VcdriverTaskLock", Value: strconv.FormatInt(f.lockID.Add(1), 10)}
	task.Info.Entity = &lock
	run := task.Execute
	task.Execute = func(task *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		own := &simulator.Context{Map: f.m.Map(), Context: context.Background()}
		f.m.Map().AtomicUpdate(own, task, []types.PropertyChange{{Name: "info.entity", Val: entity}})
		step := time.Duration(p.rule.StepMS) * time.Millisecond
		if step <= 0 {
			step = 100 * time.Millisecond
		}
		for _, pc := range p.rule.Progress {
			f.m.Map().AtomicUpdate(own, task, []types.PropertyChange{{Name: "info.progress", Val: pc}})
			time.Sleep(step)
		}
		if p.rule.Kind == kindTaskFail {
			return nil, p.rule.methodFault(entity)
		}
		var timeout <-chan time.Time
		if p.rule.Seconds > 0 {
			timeout = time.After(time.Duration(p.rule.Seconds * float64(time.Second)))
		}
		select {
		case <-timeout:
		case <-p.rule.cleared:
		}
		unlock := f.m.Map().AcquireLock(p.ctx, entity)
		defer unlock()
		return run(task)
	}
}
