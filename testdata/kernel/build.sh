#!/bin/sh
# Builds govmm's Linux test kernel from Debian's linux-source-6.1 package:
# `make tinyconfig` + govmm.config (merged with scripts/kconfig/merge_config.sh).
#
# Output goes to a cache directory outside the repository, keyed by the
# sha256 of the config fragment, the source package version and this script:
#   ${GOVMM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/govmm/kernel}/<key>/
#       vmlinux   ELF with the PVH entry note (boot with -kernel vmlinux)
#       bzImage   LZ4-compressed bzImage
#       config    the final .config
#       build.log
# A second run with the same inputs is a no-op.
#
# Usage: build.sh          build if needed, then print KERNEL_VMLINUX=... lines
#        build.sh --dir    print the output directory only (no build)
# Environment: JOBS (default 2), KEEP_SRC=1 keeps the source tree after a build.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/govmm.config
pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz
jobs=${JOBS:-2}
cache_root=${GOVMM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/govmm/kernel}

log() { echo "build.sh: $*" >&2; }

pkg_version() {
	v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
	if [ -z "$v" ]; then
		# Not installed yet: the version apt would install.
		v=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
	fi
	echo "${v:-unknown}"
}

key=$( { cat "$fragment"; echo "$pkg=$(pkg_version)"; cat "$0"; } | sha256sum | cut -c1-16)
out=$cache_root/$key

if [ "${1:-}" = "--dir" ]; then
	echo "$out"
	exit 0
fi

print_paths() {
	echo "KERNEL_VMLINUX=$out/vmlinux"
	echo "KERNEL_BZIMAGE=$out/bzImage"
}

if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
	print_paths
	exit 0
fi

mkdir -p "$cache_root"
# Serialize concurrent builds of the same key; the loser finds the result.
exec 9>"$cache_root/$key.lock"
flock 9
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
	print_paths
	exit 0
fi

if [ ! -f "$tarball" ]; then
	log "installing $pkg"
	apt-get install -y "$pkg" >&2
fi
# The key must describe the source actually used.
if [ "$key" != "$( { cat "$fragment"; echo "$pkg=$(pkg_version)"; cat "$0"; } | sha256sum | cut -c1-16)" ]; then
	log "$pkg version changed while installing; run again"
	exit 1
fi

work=$cache_root/$key.work
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)
log "extracting $tarball into $work"
tar -C "$work" -xJf "$tarball"
src=$work/$pkg
cd "$src"

log "configuring (tinyconfig + $(basename "$fragment"))"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >&2
make -s olddefconfig >&2

# merge_config only warns when Kconfig drops a requested value; make it fatal.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qx "$line" .config || { log "config: wanted $line, got: $(grep "^${line%%=*}=" .config || echo unset)"; bad=1; }
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		if grep -q "^$opt=" .config; then log "config: wanted $opt unset, got: $(grep "^$opt=" .config)"; bad=1; fi
		;;
	esac
done <"$fragment"
[ "$bad" = 0 ] || exit 1

log "building with -j$jobs (log: $work/build.log)"
if ! make -j"$jobs" bzImage >"$work/build.log" 2>&1; then
	tail -40 "$work/build.log" >&2
	exit 1
fi

if ! readelf -n vmlinux | grep -Eq 'Xen.*(0x00000012|PHYS32)'; then
	# XEN_ELFNOTE_PHYS32_ENTRY (18) is what PVH loaders look for.
	log "vmlinux has no PVH (Xen PHYS32_ENTRY) note; tree kept in $src"
	exit 1
fi

tmp=$cache_root/$key.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
cp vmlinux "$tmp/vmlinux"
cp arch/x86/boot/bzImage "$tmp/bzImage"
cp .config "$tmp/config"
cp "$work/build.log" "$tmp/build.log"
rm -rf "$out"
mv "$tmp" "$out"
cd /
[ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$work"
log "built in $(( $(date +%s) - start )) s"
print_paths
