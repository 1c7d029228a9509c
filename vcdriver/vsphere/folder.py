"""Methods of a Folder: a VM made in it."""


def create_vm(session, folder, pool, config_spec):
    """CreateVM_Task into ``pool``; the new VM.

    On a timeout the TaskTimeout carries the task still running
    (``task_ref``), for ``created_vm`` to follow.
    """
    return session.wait_for_task(folder.CreateVM_Task(config=config_spec,
                                                      pool=pool))


def created_vm(session, task, timeout):
    """The VM a CreateVM_Task given up on makes after all, waiting up to
    ``timeout`` s more; raises TaskTimeout, or the task's fault."""
    return session.wait_for_task(task, timeout=timeout)
