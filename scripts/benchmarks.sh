#!/usr/bin/env bash
# Regenerates docs/benchmarks.md from a full run of `rtm bench` on this
# machine: the IPC limit and the kernel at a million routes, and Redis,
# whose SONiC-style consumers fetch every route one request at a time, at
# 100,000 routes (at a million it takes many minutes a run). Run it as root
# for the kernel reference, with redis-server installed for Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp" ./cmd/rtmd ./cmd/rtm
"$tmp/rtm" bench -j -refs ipc-limit,kernel "$@" > "$tmp/main.json"
"$tmp/rtm" bench -j -routes 100000 -refs redis "$@" load > "$tmp/redis.json"
{
	cat docs/benchmarks.head.md
	echo
	echo "## Latest figures"
	echo
	echo "Generated $(date -u +%Y-%m-%d) by \`scripts/benchmarks.sh\`; medians of each measurement's runs, min..max beside them."
	echo
	echo '```'
	"$tmp/rtm" bench -from "$tmp/main.json"
	echo '```'
	echo
	echo "Redis as SONiC uses it, on the load scenario at 100,000 routes:"
	echo
	echo '```'
	"$tmp/rtm" bench -from "$tmp/redis.json"
	echo '```'
	echo
	echo "The first run as JSON (\`rtm bench -j\`):"
	echo
	echo '```json'
	cat "$tmp/main.json"
	echo '```'
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
