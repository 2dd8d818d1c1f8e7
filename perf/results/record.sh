#!/usr/bin/env bash
# Runs a benchmark command, shows its output, and appends one record to the
# benchmark history (format: perf/results/README.md).
#   perf/results/record.sh [-o FILE] -- COMMAND [ARG...]
# FILE defaults to perf/results/bench.txt. The command's exit status is
# returned; a failed run is recorded with "status: failed <code>".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$here/bench.txt
while [ $# -gt 0 ]; do
	case $1 in
	-o) out=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "record.sh: unknown option $1 (usage: record.sh [-o FILE] -- COMMAND [ARG...])" >&2; exit 2 ;;
	esac
done
if [ $# -eq 0 ]; then
	echo "record.sh: no command given (usage: record.sh [-o FILE] -- COMMAND [ARG...])" >&2
	exit 2
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
status=0
"$@" 2>&1 | tee "$tmp" || status=$?

commit=$(git -C "$here" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if ! git -C "$here" diff --quiet HEAD 2>/dev/null; then
	commit="$commit (dirty)"
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
{
	echo "cgw-bench: 1"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $commit"
	echo "machine: ${cpu:-unknown cpu}, $(nproc) CPUs, kernel $(uname -r), $(go env GOVERSION 2>/dev/null || echo go?)"
	echo "command: $*"
	if [ "$status" -ne 0 ]; then
		echo "status: failed $status"
	fi
	sed '/^[[:space:]]*$/d' "$tmp" # an empty line ends a record
	echo
} >>"$out"
exit "$status"
