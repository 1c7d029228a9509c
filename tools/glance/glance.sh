#!/usr/bin/env bash
# Real glance-api (no Keystone) for vcdriver tests and demos.
#
#   glance.sh install [--force]   create/refresh the Glance venv
#                                 ($VCDRIVER_GLANCE_VENV, default
#                                 $VCDRIVER_CACHE_DIR/glance-venv, cache dir
#                                 default <repo>/.cache)
#   glance.sh serve DIR [PORT]    run glance-api in the foreground on
#                                 127.0.0.1:PORT (default: a free port), all
#                                 state (config, sqlite db, images, logs)
#                                 under DIR; Ctrl-C stops it
#
# Both are thin wrappers around tests/harness/glance.py (stdlib only, any
# python3 works); see that file for the Python API used by the tests.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${VCDRIVER_GLANCE_PYTHON:-python3}

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    install)
        shift
        exec "$python" "$repo/tests/harness/glance.py" install "$@"
        ;;
    serve)
        shift
        [ $# -ge 1 ] && [ $# -le 2 ] || usage
        mkdir -p "$1"
        exec "$python" "$repo/tests/harness/glance.py" serve "$@"
        ;;
    *)
        usage
        ;;
esac
