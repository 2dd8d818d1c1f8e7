#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each (default 15s),
# after its seed corpus has already run as part of `go test`.
set -euo pipefail
t=${FUZZTIME:-15s}
fail=0
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "==> fuzz $pkg $f ($t)"
		if ! go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 2s "$pkg"; then
			fail=1
		fi
	done
done
exit $fail
