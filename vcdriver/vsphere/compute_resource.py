"""Methods of a ClusterComputeResource (a ComputeResource)."""


def reconfigure(session, cluster_ref, spec, modify=True):
    """ReconfigureComputeResource_Task: ``modify`` merges ``spec`` into
    the cluster's configuration (False would replace it whole)."""
    session.wait_for_task(cluster_ref.ReconfigureComputeResource_Task(
        spec=spec, modify=modify))
