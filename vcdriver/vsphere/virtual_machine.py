"""Methods of a VirtualMachine and of its snapshots, each waited for.

One function per vSphere method, named after it, the session first
whether it waits or not; callers build the specs (``vcdriver/vm_spec.py``)
and decide what a fault means. Faults pass through as pyVmomi raises
them.
"""


def reconfigure(session, vm, spec):
    """ReconfigVM_Task: devices, extraConfig, CPUs and memory."""
    session.wait_for_task(vm.ReconfigVM_Task(spec))


def relocate(session, vm, spec):
    """RelocateVM_Task: another host, resource pool or datastore."""
    session.wait_for_task(vm.RelocateVM_Task(spec))


def upgrade(session, vm, version):
    """UpgradeVM_Task: the VM's hardware version raised to ``version``
    (``vmx-<n>``); the VM must be powered off."""
    session.wait_for_task(vm.UpgradeVM_Task(version=version))


def power_on(session, vm):
    """PowerOnVM_Task; InvalidPowerState if it is on already."""
    session.wait_for_task(vm.PowerOnVM_Task())


def power_off(session, vm):
    """PowerOffVM_Task, hard; InvalidPowerState if it is off already."""
    session.wait_for_task(vm.PowerOffVM_Task())


def reset(session, vm):
    """ResetVM_Task: a hard reset."""
    session.wait_for_task(vm.ResetVM_Task())


def suspend(session, vm):
    session.wait_for_task(vm.SuspendVM_Task())


def shutdown_guest(session, vm):
    """ShutdownGuest: VMware Tools ask the guest to shut down; returns at
    once, the guest may take its time or not act at all."""
    vm.ShutdownGuest()


def reboot_guest(session, vm):
    """RebootGuest: VMware Tools ask the guest to reboot; returns at
    once."""
    vm.RebootGuest()


def destroy(session, vm):
    """Destroy_Task: the VM and its files."""
    session.wait_for_task(vm.Destroy_Task())


def unregister(session, vm):
    """UnregisterVM: out of the inventory, its files left."""
    vm.UnregisterVM()


def acquire_ticket(session, vm, ticket_type):
    """AcquireTicket: a console ticket from the VM's host."""
    return vm.AcquireTicket(ticketType=ticket_type)


def create_snapshot(session, vm, name, description, memory, quiesce):
    """CreateSnapshot_Task; the snapshot made."""
    return session.wait_for_task(vm.CreateSnapshot_Task(
        name=name, description=description, memory=memory, quiesce=quiesce))


def remove_snapshot(session, snapshot, consolidate=True):
    """RemoveSnapshot_Task of one snapshot (not its children), its delta
    merged back into the disks."""
    session.wait_for_task(snapshot.RemoveSnapshot_Task(
        removeChildren=False, consolidate=consolidate))
