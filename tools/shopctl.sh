#!/bin/sh
# SPDX-License-Identifier: MIT
# shopctl: switch the demo shop's failure scenarios on and off from the outside, the
# way a bad deploy would: by editing its files, stopping payments, filling its disk.
# heald heals what "on" breaks; "off" is the manual fix, for tests and people.
#
#   shopctl.sh on  SCENARIO CONFIG [PID]   CONFIG is shop.json; PID: the shop to SIGHUP
#   shopctl.sh off SCENARIO CONFIG [PID]   (for payments-down: the payments process)
#   shopctl.sh fill-disk DATA_DIR [MB]     rotate orders.log, fill with orders.log.N of MB MiB
#   shopctl.sh clean-disk DATA_DIR         remove DATA_DIR/orders.log.* (the disk-full heal)
#   shopctl.sh small-disk DATA_DIR [SIZE]  mount a tmpfs of SIZE (default 2m) on DATA_DIR
#
# Scenarios (shop --scenarios prints what fails and how each is healed):
#   returns-schema   on: add "rma_code" to "required" in the returns schema (no reload needed)
#   missing-include  on: includes.catalog = "catalog-v2.json" (missing) in shop.json + SIGHUP
#   null-crash       on: orders.discount_plugin = "summer-sale" + SIGHUP; the next order crashes
#   fd-leak          on: orders.audit_log = true + SIGHUP; EMFILE after ~57 requests
#                    off: audit_log false + SIGHUP, and prlimit --nofile=4096:4096 on PID
#   payments-down    on: SIGTERM to PID (payments); off: start $PAYMENTS (default: next to the
#                    shop binary in .output/obj/bin) on the port in shop.json
#   disk-full        on: fill-disk on data_dir (must be a mount point, e.g. small-disk)
#                    off: clean-disk
# Needs jq. Exit 0 on success, 1 on failure, 2 on a usage error.
set -eu

die() { echo "shopctl: $*" >&2; exit 1; }
usage() { sed -n '/^#   shopctl.sh/s/^# *//p' "$0" >&2; exit 2; }

command -v jq >/dev/null 2>&1 || die "jq is needed"

# Rewrites JSON file $1 with jq filter $2, atomically (temp file + rename).
jq_edit() {
	tmp="$1.shopctl.$$"
	jq "$2" "$1" > "$tmp" || { rm -f "$tmp"; die "$1: cannot edit"; }
	mv -f "$tmp" "$1"
}

# Absolute form of a path from shop.json (relative to its directory).
resolve() {
	case "$1" in
	/*) echo "$1" ;;
	*) echo "$cfgdir/$1" ;;
	esac
}

hup() {
	if [ -n "$pid" ]; then
		kill -HUP "$pid" || die "cannot SIGHUP $pid"
	else
		echo "shopctl: send SIGHUP to the shop for the change to take effect" >&2
	fi
}

fill_disk() {
	dir=$1
	mb=${2:-1}
	[ -d "$dir" ] || die "$dir: not a directory"
	if [ "${SHOPCTL_FORCE:-0}" != 1 ] && ! mountpoint -q "$dir"; then
		die "$dir is not a mount point: refusing to fill the filesystem it is on (SHOPCTL_FORCE=1 to insist)"
	fi
	n=1
	while [ -e "$dir/orders.log.$n" ]; do n=$((n + 1)); done
	# Rotate the live log as logrotate would: the next order starts a file that needs a new block.
	if [ -e "$dir/orders.log" ]; then
		mv "$dir/orders.log" "$dir/orders.log.$n"
		n=$((n + 1))
	fi
	line='{"id":"ord-0-0","item":"sku-1","qty":1,"amount_cents":1250,"status":"paid"}'
	while yes "$line" | head -c $((mb * 1024 * 1024)) > "$dir/orders.log.$n" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -le 100000 ] || die "$dir: still not full after $n files"
	done
	[ -s "$dir/orders.log.$n" ] || { rm -f "$dir/orders.log.$n"; n=$((n - 1)); }
	echo "shopctl: filled $dir with rotated logs up to orders.log.$n ($(df -k --output=avail "$dir" | tail -n 1 | tr -d ' ') KiB free)"
}

clean_disk() {
	[ -d "$1" ] || die "$1: not a directory"
	rm -f "$1"/orders.log.[0-9]*
	echo "shopctl: removed $1/orders.log.* ($(df -k --output=avail "$1" | tail -n 1 | tr -d ' ') KiB free)"
}

cmd=${1:-}
[ $# -ge 1 ] || usage
shift
case "$cmd" in
fill-disk)
	[ $# -ge 1 ] || usage
	fill_disk "$@"
	exit 0
	;;
clean-disk)
	[ $# -eq 1 ] || usage
	clean_disk "$1"
	exit 0
	;;
small-disk)
	[ $# -ge 1 ] || usage
	mkdir -p "$1"
	mount -t tmpfs -o "size=${2:-2m},mode=0755" shop-data "$1"
	exit 0
	;;
on | off) ;;
*) usage ;;
esac

if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
scenario=$1
config=$2
pid=${3:-}
[ -f "$config" ] || die "$config: no such file"
cfgdir=$(cd "$(dirname "$config")" && pwd)

case "$cmd-$scenario" in
on-returns-schema)
	jq_edit "$(resolve "$(jq -r .includes.returns_schema "$config")")" \
		'if (.required // []) | index("rma_code") then . else .required = (.required // []) + ["rma_code"] end'
	;;
off-returns-schema)
	jq_edit "$(resolve "$(jq -r .includes.returns_schema "$config")")" '.required -= ["rma_code"]'
	;;
on-missing-include)
	jq_edit "$config" '.includes.catalog = "catalog-v2.json"'
	hup
	;;
off-missing-include)
	jq_edit "$config" '.includes.catalog = "catalog.json"'
	hup
	;;
on-null-crash)
	jq_edit "$config" '.orders.discount_plugin = "summer-sale"'
	hup
	;;
off-null-crash)
	jq_edit "$config" '.orders.discount_plugin = "none"'
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then hup; else echo "shopctl: restart the shop" >&2; fi
	;;
on-fd-leak)
	jq_edit "$config" '.orders.audit_log = true'
	hup
	;;
off-fd-leak)
	jq_edit "$config" '.orders.audit_log = false'
	hup
	[ -z "$pid" ] || prlimit --pid "$pid" --nofile=4096:4096
	;;
on-payments-down)
	[ -n "$pid" ] || die "payments-down: give the payments PID"
	kill -TERM "$pid"
	;;
off-payments-down)
	port=$(jq -r .payments "$config")
	port=${port##*:}
	bin=${PAYMENTS:-$(dirname "$0")/../.output/obj/bin/payments}
	[ -x "$bin" ] || die "$bin: not executable (set PAYMENTS)"
	"$bin" --port "$port" </dev/null >/dev/null 2>&1 &
	echo "shopctl: payments started on port $port, pid $!"
	;;
on-disk-full)
	fill_disk "$(resolve "$(jq -r .data_dir "$config")")"
	;;
off-disk-full)
	clean_disk "$(resolve "$(jq -r .data_dir "$config")")"
	;;
*)
	die "unknown scenario '$scenario' (returns-schema missing-include null-crash fd-leak payments-down disk-full)"
	;;
esac
