#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it first installs the tools the tests use.
# Last line of output: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_node
need_debs dig:bind9-dnsutils named-checkzone:bind9utils caddy:caddy supervisord:supervisor
need_npm
echo "dnsproxy: testing on Node $(node --version) ($(command -v node))" >&2
if [ $# -eq 0 ]; then set -- 'test/**/*.test.ts'; fi
exec npx mocha --reporter ./test/reporter.cjs "$@"
