#!/usr/bin/env bash
# The test command (README, CI): installs the client programs the
# integration tests drive, when missing, then runs `cargo test` with any
# arguments given (e.g. `tests/run.sh --test http`).
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> Debian package
declare -A package_of=(
    [chromium]=chromium [curl]=curl [wget]=wget [ab]=apache2-utils
    [h2load]=nghttp2-client [wrk]=wrk [ip]=iproute2 [python3]=python3
    [logrotate]=logrotate [goaccess]=goaccess [jq]=jq
    [systemd-socket-activate]=systemd [haproxy]=haproxy [nginx]=nginx [strace]=strace
)
missing=()
for program in "${!package_of[@]}"; do
    command -v "$program" > /dev/null || missing+=("${package_of[$program]}")
done
# nginx's stream module (for the PROXY protocol front-end test) is a package
# of its own.
[[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || missing+=(libnginx-mod-stream)
if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    sudo=()
    if ((EUID != 0)); then
        command -v sudo > /dev/null && sudo=(sudo)
    fi
    if command -v apt-get > /dev/null && { ((EUID == 0)) || ((${#sudo[@]})); }; then
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq "${missing[@]}" > /dev/null
    else
        echo "tests/run.sh: cannot install them here; the tests that need them will fail" >&2
    fi
fi

exec cargo test "$@"
