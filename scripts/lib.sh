# Shared by scripts/run.sh and scripts/test.sh: install what is missing, say what to do when we cannot.

die() { echo "dnsproxy: $*" >&2; exit 1; }

# need_debs CMD:PACKAGE ... — installs the Debian packages whose command is missing.
need_debs() {
  local missing=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing ${missing[*]}: this is not a Debian system; install them with your package manager"
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "missing ${missing[*]}: run as root, or first: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  echo "dnsproxy: installing ${missing[*]} (apt-get)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

need_node() {
  command -v node >/dev/null 2>&1 || die "Node.js >= 20 is required (Debian 12's nodejs is 18: use NodeSource or nvm)"
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js >= 20 is required, found $(node --version)"
}

# npm dependencies, installed only when package-lock.json changed since the last install; then compile.
need_npm() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund >&2 || die "npm ci failed"
  fi
  npm run --silent build >&2 || die "TypeScript build failed"
}
