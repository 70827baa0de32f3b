#!/bin/sh
# Run test binaries from $BIN, add up their results, print one closing line.
# cmocka suites report "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)";
# harness suites report "suite: N passed, N failed, N skipped".
set -u
BIN=${BIN:-.output/obj/bin}
passed=0 failed=0 skipped=0 broken=""
for t in "$@"; do
	echo "== $t"
	out=$(mktemp)
	if [ "$t" = test_ui ]; then
		# the dashboard in headless Chromium; a skip (77) is a failure where everything is required
		bash tests/ui/run.sh "$BIN" 2>&1 | tee "$out"
		if [ "${HEAL_REQUIRE_BPF:-0}" = 1 ] && grep -q '^test_ui: 0 passed, 0 failed, 1 skipped' "$out"; then
			echo "test_ui: 0 passed, 1 failed, 0 skipped (a skip is a failure under HEAL_REQUIRE_BPF=1)" >> "$out"
		fi
	else
		"$BIN/$t" 2>&1 | tee "$out"
	fi

	# cmocka
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$out" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$out" | tail -n 1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' "$out" | tail -n 1)
	# harness
	line=$(grep -E "^$t: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$" "$out" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
		f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
		s=$(echo "$line" | sed 's/.* \([0-9]*\) skipped.*/\1/')
	fi
	if [ -z "$p$f" ]; then
		# no summary at all: the binary crashed or never ran a test
		broken="$broken $t"
		f=1
	fi
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
	rm -f "$out"
done
[ -z "$broken" ] || echo "no summary from:$broken"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
