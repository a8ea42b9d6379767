#!/usr/bin/env bash
# Makes the image Dockerfile.all builds FROM, node:<NODE_PIN major>-bookworm-slim, on a machine that
# cannot pull it (no registry but Debian's and npm's): a Debian 12 minbase from this machine's apt
# mirror (debootstrap), the pinned Node (scripts/lib.sh, npm package node-linux-<arch>, with its
# headers) and npm under /usr/local, imported into podman under that tag. Kept by podman between
# runs: nothing is done when an image of that tag made for this NODE_PIN and NPM_PIN is there.
#   bash scripts/node-base-image.sh          # prints the tag; needs root (debootstrap) and podman
# Like the official image: slim dpkg excludes (no docs, man pages, locales), PATH with
# /usr/local/bin, CMD node. test/deploy/image.test.ts calls it before building the image.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# npm as the official image ships it beside Node 24; sha512 of its tarball, as hex:
#   npm view npm@$NPM_PIN dist.integrity  (base64: echo … | base64 -d | xxd -p -c 64)
NPM_PIN=11.19.1
NPM_SHA512=cedb312b1b7f92421a02cfb68b4194e88f8346651dacd6acc5364a25ef5309d4a32b19616a1ff8aff865e7280c0fa5c0835a99f5cd93368991e2a80ec9da75d2
# The label that tells an image made here, and for which pins, from a pulled one.
LABEL_KEY=dev.dnsproxy.node-base
TAG="node:${NODE_PIN%%.*}-bookworm-slim"
want="node-$NODE_PIN npm-$NPM_PIN"

command -v podman >/dev/null 2>&1 || die "podman is missing (apt-get install podman)"
# One maker at a time (two test runs at once): the second waits, then finds the image made.
mkdir -p .tmp
exec 9>.tmp/node-base.lock
flock 9
if podman image exists "$TAG" 2>/dev/null; then
  have=$(podman image inspect --format "{{ index .Labels \"$LABEL_KEY\" }}" "$TAG" 2>/dev/null || true)
  case "$have" in
    "$want") echo "$TAG"; exit 0 ;;
    "" | "<no value>") echo "$TAG"; exit 0 ;; # pulled (the official image): used as it is
    *) echo "dnsproxy: $TAG was made here for $have: making it again for $want" >&2 ;;
  esac
fi
[ "$(id -u)" -eq 0 ] || die "$TAG is not here and making it needs root (debootstrap)"
need_debs debootstrap:debootstrap

# This machine's Debian mirror (deb822 URIs: or one-line deb entries), the security archive beside it.
mirror="" security=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
  [ -f "$f" ] || continue
  while read -r uri; do
    case "$uri" in
      */debian-security | */debian-security/) [ -n "$security" ] || security=${uri%/} ;;
      */debian | */debian/) [ -n "$mirror" ] || mirror=${uri%/} ;;
    esac
  done < <(sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f" | tr ' ' '\n')
done
mirror=${DNSPROXY_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}

case "$(uname -m)" in x86_64 | amd64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) die "no pinned Node build for $(uname -m)" ;; esac
nodedir="$DNSPROXY_ROOT/.runtime/node-v$NODE_PIN-linux-$arch"
[ "$("$nodedir/bin/node" --version 2>/dev/null)" = "v$NODE_PIN" ] || install_node "$arch" "$nodedir" "no pinned Node in .runtime"

started=$SECONDS
work=$(mktemp -d "$DNSPROXY_ROOT/.tmp/node-base.XXXXXX")
# --one-file-system: were debootstrap stopped half-way, its /proc mount in the target is left alone.
trap 'rm -rf --one-file-system "$work"' EXIT
root="$work/rootfs"
echo "dnsproxy: making $TAG: debootstrap bookworm minbase from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# The slim variant's dpkg excludes, so later apt-get installs stay small too.
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$root/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
{
  echo "deb $mirror bookworm main"
  echo "deb $mirror bookworm-updates main"
  [ -z "$security" ] || echo "deb $security bookworm-security main"
} >"$root/etc/apt/sources.list"
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
rm -rf "$root"/usr/share/{man,info,groff,lintian,linda,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
  "$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/tmp/*
# The names every container runtime bind-mounts at start.
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

# Node (binary and headers: node-gyp finds them with npm_config_nodedir=/usr/local) and npm.
mkdir -p "$root/usr/local/bin" "$root/usr/local/include" "$root/usr/local/lib/node_modules"
cp "$nodedir/bin/node" "$root/usr/local/bin/node"
cp -r "$nodedir/include/node" "$root/usr/local/include/node"
npmtgz=$(npm pack "npm@$NPM_PIN" --pack-destination "$work" --silent) || die "npm pack npm@$NPM_PIN failed"
[ "$(sha512sum "$work/$npmtgz" | cut -d' ' -f1)" = "$NPM_SHA512" ] || die "npm@$NPM_PIN: the tarball's sha512 is not the pinned one"
tar -xzf "$work/$npmtgz" -C "$work"
mv "$work/package" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# Imported under the tag (which moves off an older image), then the older one is removed.
old=$(podman image inspect --format '{{ .Id }}' "$TAG" 2>/dev/null || true)
tar --numeric-owner --xattrs -C "$root" -c . | podman import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_PIN" \
  --change "LABEL $LABEL_KEY=\"$want\"" \
  --change 'CMD ["node"]' \
  - "$TAG" >/dev/null || die "podman import failed"
[ -z "$old" ] || podman image rm "$old" >/dev/null 2>&1 || true
echo "dnsproxy: $TAG made in $((SECONDS - started)) s ($(podman image inspect --format '{{ .Size }}' "$TAG" | awk '{printf "%d MB", $1/1e6}'))" >&2
echo "$TAG"
