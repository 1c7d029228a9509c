#!/bin/bash
#
# devstack/plugin.sh - devstack plugin for vcdriver, the out-of-tree Nova
# compute driver for VMware vCenter (compute_driver = vcdriver.VMwareVCDriver)
#
# Phases (devstack sources this file with them as arguments):
#   stack install      pip install vcdriver into Nova's environment; with
#                      the vcdriver-vcsim service, go build tools/vcsim
#   stack post-config  start vcdriver-vcsim if enabled; write the driver's
#                      settings, and the scheduler's server group filters,
#                      into $NOVA_CONF
#   stack extra        upload a VMDK image to Glance
#   unstack            stop vcdriver-vcsim
#   clean              remove $VCDRIVER_DATA_DIR (launcher, datastores,
#                      image files)
#
# Defaults: devstack/settings. Nothing is copied into Nova's tree: the
# package ships its own shim nova/virt/vcdriver.

# Save trace setting
_XTRACE_VCDRIVER=$(set +o | grep xtrace)
set +o xtrace

VCDRIVER_SERVICE=vcdriver-vcsim

# Functions
# ---------

# install_vcdriver - pip install the checkout (editable) into the
# environment Nova runs from, with devstack's upper constraints
function install_vcdriver {
    setup_develop "$VCDRIVER_DIR"
}

# _vcdriver_go - the go binary to build with, or die
function _vcdriver_go {
    local go=$VCDRIVER_GO
    # Go's own tarball installs there, often without a PATH entry.
    if ! command -v "$go" >/dev/null 2>&1; then
        if [[ -x /usr/local/go/bin/go ]]; then
            go=/usr/local/go/bin/go
        fi
    fi
    if ! command -v "$go" >/dev/null 2>&1; then
        die $LINENO "vcdriver-vcsim needs Go >= 1.25 to build tools/vcsim:" \
            "install it or set VCDRIVER_GO to its binary"
    fi
    echo "$go"
}

# build_vcdriver_vcsim - build our launcher around govmomi's simulator
function build_vcdriver_vcsim {
    local go
    go=$(_vcdriver_go) || exit 1
    mkdir -p "$(dirname "$VCDRIVER_VCSIM_BIN")"
    (
        cd "$VCDRIVER_DIR/tools/vcsim" &&
            "$go" build -buildvcs=false -o "$VCDRIVER_VCSIM_BIN" .
    ) || die $LINENO "go build of $VCDRIVER_DIR/tools/vcsim failed"
}

# vcdriver_vcsim_command - the launcher's command line. It serves until
# SIGTERM (stop_process) and prints one JSON line (url, port, clusters,
# datastores) to the journal once it serves. Never -exit-on-stdin-close:
# a service's stdin is /dev/null, it would exit at once.
function vcdriver_vcsim_command {
    local cmd="$VCDRIVER_VCSIM_BIN"
    cmd+=" -listen $VCDRIVER_VCSIM_HOST:$VCDRIVER_VCSIM_PORT"
    cmd+=" -datacenters 1"
    cmd+=" -clusters $VCDRIVER_VCSIM_CLUSTERS"
    cmd+=" -hosts-per-cluster $VCDRIVER_VCSIM_HOSTS_PER_CLUSTER"
    cmd+=" -host-memory-mb $VCDRIVER_VCSIM_HOST_MEMORY_MB"
    cmd+=" -host-cpu-cores $VCDRIVER_VCSIM_HOST_CPU_CORES"
    cmd+=" -nfs $VCDRIVER_VCSIM_NFS"
    cmd+=" -datastore-capacity-gb $VCDRIVER_VCSIM_DATASTORE_CAPACITY_GB"
    cmd+=" -datastore-root $VCDRIVER_VCSIM_DATASTORE_ROOT"
    cmd+=" -username $VCDRIVER_VCSIM_USER -password $VCDRIVER_VCSIM_PASSWORD"
    if [[ -n "$VCDRIVER_VCSIM_EXTRA_ARGS" ]]; then
        cmd+=" $VCDRIVER_VCSIM_EXTRA_ARGS"
    fi
    echo "$cmd"
}

# vcdriver_vcsim_clusters - vcsim's cluster names, comma separated
function vcdriver_vcsim_clusters {
    local i names=""
    for ((i = 0; i < VCDRIVER_VCSIM_CLUSTERS; i++)); do
        names+="${names:+,}DC0_C$i"
    done
    echo "$names"
}

# start_vcdriver_vcsim - run the simulator as a devstack service and wait
# until it answers
function start_vcdriver_vcsim {
    [[ -x "$VCDRIVER_VCSIM_BIN" ]] || die $LINENO \
        "$VCDRIVER_VCSIM_BIN is missing: stack install builds it"
    mkdir -p "$VCDRIVER_VCSIM_DATASTORE_ROOT"
    run_process "$VCDRIVER_SERVICE" "$(vcdriver_vcsim_command)"
    if ! wait_for_service "$VCDRIVER_VCSIM_START_TIMEOUT" \
            "http://$VCDRIVER_VCSIM_HOST:$VCDRIVER_VCSIM_PORT/sdk"; then
        die $LINENO "vcdriver-vcsim did not answer on" \
            "$VCDRIVER_VCSIM_HOST:$VCDRIVER_VCSIM_PORT within" \
            "${VCDRIVER_VCSIM_START_TIMEOUT}s (journalctl -u" \
            "devstack@$VCDRIVER_SERVICE)"
    fi
}

# stop_vcdriver_vcsim - stop the simulator (its datastores stay)
function stop_vcdriver_vcsim {
    stop_process "$VCDRIVER_SERVICE"
}

# _vcdriver_trim - a value without leading and trailing blanks
function _vcdriver_trim {
    local value=$1
    value=${value#"${value%%[![:space:]]*}"}
    value=${value%"${value##*[![:space:]]}"}
    echo "$value"
}

# configure_vcdriver - the driver's settings in $NOVA_CONF (devstack copies
# it into nova-cpu.conf when it starts nova-compute). local.conf's
# [[post-config|$NOVA_CONF]] is merged after this and can override it.
function configure_vcdriver {
    local host=$VCDRIVER_VCENTER_HOST
    local port=$VCDRIVER_VCENTER_PORT
    local user=$VCDRIVER_VCENTER_USER
    local password=$VCDRIVER_VCENTER_PASSWORD
    local protocol=$VCDRIVER_VCENTER_PROTOCOL
    local insecure=$VCDRIVER_INSECURE
    local clusters=$VCDRIVER_CLUSTERS

    if is_service_enabled "$VCDRIVER_SERVICE"; then
        # The simulator serves plain HTTP on a fixed address.
        host=$VCDRIVER_VCSIM_HOST
        port=$VCDRIVER_VCSIM_PORT
        user=$VCDRIVER_VCSIM_USER
        password=$VCDRIVER_VCSIM_PASSWORD
        protocol=http
        insecure=True
        clusters=${clusters:-$(vcdriver_vcsim_clusters)}
    fi
    if [[ -z "$host" ]]; then
        die $LINENO "set VCDRIVER_VCENTER_HOST (or VCDRIVER_USE_VCSIM=True)"
    fi
    if [[ -z "$clusters" ]]; then
        die $LINENO "set VCDRIVER_CLUSTERS to the vCenter cluster(s) to serve"
    fi
    local first rest=""
    first=$(_vcdriver_trim "${clusters%%,*}")
    if [[ "$clusters" == *,* ]]; then
        rest=$(_vcdriver_trim "${clusters#*,}")
    fi

    iniset "$NOVA_CONF" DEFAULT compute_driver vcdriver.VMwareVCDriver
    iniset "$NOVA_CONF" vmware host_ip "$host"
    iniset "$NOVA_CONF" vmware host_port "$port"
    iniset "$NOVA_CONF" vmware host_username "$user"
    iniset "$NOVA_CONF" vmware host_password "$password"
    iniset "$NOVA_CONF" vmware cluster_name "$first"
    iniset "$NOVA_CONF" vmware insecure "$insecure"
    if [[ -n "$VCDRIVER_CA_FILE" ]]; then
        iniset "$NOVA_CONF" vmware ca_file "$VCDRIVER_CA_FILE"
    fi
    if [[ -n "$VCDRIVER_DATASTORE_REGEX" ]]; then
        iniset "$NOVA_CONF" vmware datastore_regex "$VCDRIVER_DATASTORE_REGEX"
    fi
    iniset "$NOVA_CONF" vcdriver vcenter_protocol "$protocol"
    if [[ -n "$rest" ]]; then
        iniset "$NOVA_CONF" vcdriver cluster_names "$rest"
    fi
}

# configure_vcdriver_server_groups - vcdriver's server group filters in
# place of Nova's, so that a hard anti-affinity group spreads over a
# cluster's ESXi hosts (doc/source/features.rst, "Server groups"). They
# have the names of Nova's, which devstack's enabled_filters lists
# already. The compute's late group check would count the cluster as one
# host and refuse the second member: off, the mandatory DRS rule stands
# in for it.
function configure_vcdriver_server_groups {
    iniset "$NOVA_CONF" filter_scheduler available_filters \
        vcdriver.scheduler.filters.all_filters
    iniset "$NOVA_CONF" workarounds disable_group_policy_check_upcall True
}

# upload_vcdriver_image - a VMDK image in Glance with the properties this
# driver reads: vmware_disktype (how to read the bytes), vmware_adaptertype
# (the SCSI controller), hw_vif_model (the NIC), vmware_ostype (the guest
# id), and img_hv_type=vmware so Nova's ImagePropertiesFilter sends it to
# vCenter nodes only
function upload_vcdriver_image {
    local name=$VCDRIVER_IMAGE_NAME
    local url=$VCDRIVER_IMAGE_URL
    local os_cli=(openstack --os-cloud=devstack-admin
        --os-region-name="$REGION_NAME")

    if "${os_cli[@]}" image show "$name" >/dev/null 2>&1; then
        echo "vcdriver: image $name exists already"
        return 0
    fi

    local dir=$VCDRIVER_DATA_DIR/images
    local base=${url%%\?*}
    local src
    src=$dir/$(basename "$base")
    mkdir -p "$dir"
    if [[ ! -s "$src" ]]; then
        curl -fsSL --retry 3 -o "$src.part" "$url" ||
            die $LINENO "cannot download $url"
        mv "$src.part" "$src"
    fi

    local disk=$src
    local disktype=$VCDRIVER_IMAGE_DISKTYPE
    if [[ "$base" != *.vmdk ]]; then
        # One compressed, self-contained VMDK; the driver turns it into a
        # flat disk as it streams.
        disk=$dir/$name.vmdk
        if [[ ! -s "$disk" ]]; then
            qemu-img convert -O vmdk \
                -o subformat=streamOptimized,adapter_type=lsilogic \
                "$src" "$disk.part" ||
                die $LINENO "qemu-img cannot convert $src to VMDK"
            mv "$disk.part" "$disk"
        fi
        disktype=streamOptimized
    fi

    "${os_cli[@]}" image create "$name" --public \
        --disk-format vmdk --container-format bare \
        --property vmware_disktype="$disktype" \
        --property vmware_adaptertype="$VCDRIVER_IMAGE_ADAPTER_TYPE" \
        --property hw_vif_model="$VCDRIVER_IMAGE_VIF_MODEL" \
        --property vmware_ostype="$VCDRIVER_IMAGE_OS_TYPE" \
        --property img_hv_type=vmware \
        --file "$disk" || die $LINENO "cannot upload image $name to Glance"
}

# cleanup_vcdriver - remove build outputs and the simulator's datastores
function cleanup_vcdriver {
    rm -rf "$VCDRIVER_DATA_DIR"
}

# Dispatcher
# ----------

if [[ "$1" == "stack" && "${2:-}" == "install" ]]; then
    echo_summary "Installing vcdriver"
    install_vcdriver
    if is_service_enabled "$VCDRIVER_SERVICE"; then
        echo_summary "Building the vcsim launcher"
        build_vcdriver_vcsim
    fi
elif [[ "$1" == "stack" && "${2:-}" == "post-config" ]]; then
    if is_service_enabled "$VCDRIVER_SERVICE"; then
        echo_summary "Starting vcdriver-vcsim"
        start_vcdriver_vcsim
    fi
    echo_summary "Configuring Nova for vcdriver"
    configure_vcdriver
    if [[ $VCDRIVER_SERVER_GROUP_FILTERS == True ]]; then
        configure_vcdriver_server_groups
    fi
elif [[ "$1" == "stack" && "${2:-}" == "extra" ]]; then
    if [[ $VCDRIVER_UPLOAD_IMAGE == True ]] && is_service_enabled glance; then
        echo_summary "Uploading a VMDK image for vcdriver"
        upload_vcdriver_image
    fi
fi

if [[ "$1" == "unstack" ]]; then
    if is_service_enabled "$VCDRIVER_SERVICE"; then
        stop_vcdriver_vcsim
    fi
fi

if [[ "$1" == "clean" ]]; then
    cleanup_vcdriver
fi

# Restore xtrace
$_XTRACE_VCDRIVER

# Local variables:
# mode: shell-script
# End:
