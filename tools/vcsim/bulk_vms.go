package main

import (
	"context"
	"errors"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// Start-up VMs (-vms) created by several workers (-vm-workers).
//
// Each VM costs a CreateVM_Task and a PowerOnVM_Task through the in-process
// client. Waiting for them through a PropertyCollector (WaitForUpdatesEx)
// cost about half the CPU of making the VMs (every update is deep-copied
// through XML), and one at a time 1,000 VMs took 45 s, mostly asleep.
// waitTask instead waits on the simulator's task object itself, and
// workers overlap the waits; the VMs, their names and files are the same,
// only their creation order (so their morefs) and host placement (random
// anyway) differ.

// vmJob is one VM for createVM to create and power on.
type vmJob struct {
	folder *object.Folder
	pool   *object.ResourcePool
	host   *object.HostSystem // nil: the cluster picks one
	name   string
}

// runVMJobs creates the VMs with workers goroutines (1 or less: in order,
// one at a time) and returns the first error.
func runVMJobs(ctx context.Context, c *vim25.Client, jobs []vmJob, workers int) error {
	if workers <= 1 {
		for _, j := range jobs {
			if err := createVM(ctx, c, j.folder, j.pool, j.host, j.name); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan vmJob)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if err := createVM(ctx, c, j.folder, j.pool, j.host, j.name); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs // nil when no worker failed
}

// waitTask waits for a task and returns its result. With the in-process
// client it polls the simulator's task object (Task.Wait, no
// PropertyCollector); otherwise it waits as any client does.
func waitTask(ctx context.Context, c *vim25.Client, t *object.Task) (types.AnyType, error) {
	svc, ok := c.RoundTripper.(*simulator.Service)
	if !ok {
		info, err := t.WaitForResult(ctx, nil)
		if err != nil {
			return nil, err
		}
		return info.Result, nil
	}
	st, ok := svc.Context.Map.Get(t.Reference()).(*simulator.Task)
	if !ok {
		return nil, errors.New("task " + t.Reference().Value + " not found")
	}
	st.Wait()
	var info types.TaskInfo
	svc.Context.Map.WithLock(&simulator.Context{}, st, func() { info = st.Info })
	if info.State == types.TaskInfoStateError {
		if info.Error != nil {
			return nil, task.Error{LocalizedMethodFault: info.Error, Description: info.Description}
		}
		return nil, errors.New("task " + st.Self.Value + " failed")
	}
	return info.Result, nil
}
