# SPDX-License-Identifier: MIT
# Sourced (POSIX sh and bash alike) by the demo, the dashboard test and the
# benchmarks: free_port sets PORT to a TCP port nothing listens on, between
# 20000 and 31999 (below the ephemeral range), and never hands out the same
# one twice in one shell.
FREE_PORTS_GIVEN=" "
free_port() {
	while :; do
		PORT=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 12000))
		case $FREE_PORTS_GIVEN in *" $PORT "*) continue ;; esac
		grep -qs "$(printf ':%04X ' "$PORT")" /proc/net/tcp /proc/net/tcp6 && continue
		FREE_PORTS_GIVEN="$FREE_PORTS_GIVEN$PORT "
		return 0
	done
}
