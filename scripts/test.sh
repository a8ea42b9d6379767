#!/usr/bin/env bash
# Runs every test, then the linter and the coverage check. On a fresh Debian machine it first
# installs the tools the tests use. Last line of output: "N passed, N failed" — the tests, plus
# one check each for lint (typescript-eslint, zero problems) and, on a full run, coverage (c8:
# at least COVERAGE_MIN % of the lines of src/).
# `bash scripts/test.sh test/dns/*.test.ts` runs only those files (lint too, coverage not enforced).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_node
# nsd: the reference server of test/dns/nsd.test.ts (its binaries live in /usr/sbin). pebble: the
# ACME test CA of the certificate tests (test/helpers/pebble.ts; openssl makes its HTTPS certificate).
PATH="$PATH:/usr/sbin:/sbin" need_debs dig:bind9-dnsutils named-checkzone:bind9utils caddy:caddy supervisord:supervisor nsd:nsd nsd-checkconf:nsd \
  pebble:pebble openssl:openssl
# test/deploy/image.test.ts builds Dockerfile.all with podman and runs it (~15 min cold on a loaded box,
# ~4 min with podman's layer cache). Its tools are installed here as root on Debian; where they cannot be,
# the test says why and skips. DNSPROXY_SKIP_IMAGE_TEST=1 skips it.
IMAGE_DEBS=(podman runc containernetworking-plugins iptables debootstrap)
if [ -z "${DNSPROXY_SKIP_IMAGE_TEST:-}" ] && { [ $# -eq 0 ] || [[ " $* " == *image* ]]; } \
  && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for deb in "${IMAGE_DEBS[@]}"; do dpkg -s "$deb" >/dev/null 2>&1 || missing+=("$deb"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "dnsproxy: installing ${missing[*]} for the image test (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
      || echo "dnsproxy: apt-get install ${missing[*]} failed: the image test will say why it skips" >&2
  fi
fi
need_npm
echo "dnsproxy: testing on Node $(node --version) ($(command -v node))" >&2
# Lines of src/ the tests must run; below it the coverage check fails.
COVERAGE_MIN=85
full=0
if [ $# -eq 0 ]; then set -- 'test/**/*.test.ts'; full=1; fi
mkdir -p .tmp
summary=$(mktemp .tmp/summary.XXXXXX)
cov=.tmp/coverage
rm -rf "$cov"
# c8 sets NODE_V8_COVERAGE, so the servers the tests start (bin/dnsproxy → dist/, mapped back to
# src/ through the source maps) count as well as the code mocha loads through tsx.
set +e
DNSPROXY_TEST_SUMMARY="$summary" npx c8 --all --src src --include 'src/**' --include 'dist/**' --exclude-after-remap \
  --reports-dir "$cov" --reporter text-summary --reporter json-summary \
  npx mocha --reporter ./test/reporter.cjs "$@"
set -e
read -r passed failed skipped < "$summary" || { passed=0; failed=1; skipped=0; echo "dnsproxy: mocha did not finish" >&2; }
rm -f "$summary"

echo
echo "lint (typescript-eslint, type-checked rules, src/ and test/):"
if npx eslint --max-warnings 0 src test; then
  echo "lint: 0 problems"; passed=$((passed + 1))
else
  echo "lint: FAILED (see above)"; failed=$((failed + 1))
fi

lines=$(node -p "require('./$cov/coverage-summary.json').total.lines.pct" 2>/dev/null || echo 0)
echo "coverage: ${lines}% of the lines of src/ (minimum ${COVERAGE_MIN}%, full report: npx c8 report --reports-dir $cov)"
if [ "$full" -eq 1 ]; then
  if node -e "process.exit(Number('$lines') >= $COVERAGE_MIN ? 0 : 1)"; then passed=$((passed + 1)); else
    echo "coverage: FAILED (below ${COVERAGE_MIN}%)"; failed=$((failed + 1)); fi
fi
echo "${passed} passed, ${failed} failed$([ "$skipped" -gt 0 ] && echo ", ${skipped} skipped")"
[ "$failed" -eq 0 ]
