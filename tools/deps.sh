#!/bin/sh
# Install the Debian packages heal needs to build, test and demo; does nothing when all are there.
# --bench: also what `make bench` compares heald with (bpftrace, strace, nginx, wrk, supervisor, perf).
set -eu
PKGS="make gcc clang llvm pkg-config libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
libcjson-dev libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev systemtap-sdt-dev linux-libc-dev jq util-linux
binutils curl prometheus chromium libpq-dev postgresql"
[ "${1:-}" = "--bench" ] && PKGS="$PKGS bpftrace strace nginx wrk supervisor linux-perf procps"
# node and npm for the dashboard test (playwright-core drives the system's chromium)
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
ui_modules() {
	# playwright-core only: no browser is downloaded
	[ -d tests/ui/node_modules/playwright-core ] && return 0
	(cd tests/ui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
		echo "deps: npm ci in tests/ui failed: the dashboard test will skip" >&2
}
if [ -z "$missing" ]; then
	ui_modules
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run 'sudo make deps' (or apt-get install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
ui_modules
