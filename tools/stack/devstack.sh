#!/bin/bash
#
# tools/stack/devstack.sh NOVA_CONF - run devstack/plugin.sh's post-config
# phase against one nova-compute configuration, as devstack would, with
# small real implementations of the devstack helpers it calls. The stack
# (tools/stack) writes its compute services' driver settings this way, so
# a broken plugin breaks the stack.
#
# The plugin's settings come from the environment (VCDRIVER_VCENTER_HOST,
# VCDRIVER_CLUSTERS, ...: devstack/settings); the simulator is the stack's
# own, so the plugin's vcdriver-vcsim service stays disabled.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
NOVA_CONF=${1:?usage: devstack.sh NOVA_CONF}
DEST=${DEST:-$repo/..}
DATA_DIR=${DATA_DIR:-$repo/.cache/stack/devstack-data}
ENABLED_SERVICES=${ENABLED_SERVICES:-n-cpu}
VCDRIVER_DIR=$repo
PYTHON=${PYTHON:-python3}

# devstack's functions-common, as far as the plugin uses them.
function iniset {
    if [[ "$1" == "-sudo" ]]; then
        shift
    fi
    "$PYTHON" "$here/ini.py" set "$@"
}

function die {
    local line=$1
    shift
    echo "devstack.sh: line $line: $*" >&2
    exit 1
}

function trueorfalse {
    local default=$1 name=$2 value
    value=${!name:-$default}
    case "${value,,}" in
        1|yes|true|on) echo True ;;
        0|no|false|off|'') echo False ;;
        *) echo "$default" ;;
    esac
}

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        is_service_enabled "$service" || ENABLED_SERVICES+=",$service"
    done
}

function echo_summary {
    echo "devstack.sh: $*"
}

function define_plugin {
    :
}

# shellcheck source=devstack/settings
source "$repo/devstack/settings"
# shellcheck source=devstack/plugin.sh
source "$repo/devstack/plugin.sh" stack post-config
