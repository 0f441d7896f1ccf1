#!/bin/sh
# Boots the test kernel and the agent initramfs under QEMU as a reference
# run: a q35 machine with virtio-blk, virtio-rng and virtio-console (modern
# PCI), or -M microvm with MICROVM=1 (no PCI: only the kernel check passes).
# Prints the console transcript; the agent's JSON lines end with "done".
#
# Usage: testdata/kernel/qemu-smoke.sh [vmlinux] [initramfs.cpio]
# Environment: TIMEOUT (seconds, default 120), ACCEL (kvm, tcg, default kvm:tcg),
#              EXTRA_APPEND (more kernel parameters).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kernel=${1:-$("$here/build.sh" --dir)/vmlinux}
initrd=${2:-build/initramfs.cpio}
timeout=${TIMEOUT:-120}
disk=$(mktemp /tmp/govmm-smoke-XXXXXX.img)
trap 'rm -f "$disk"' EXIT
truncate -s 16M "$disk"

# noxsave/clearcpuid: see /work/shared/ENVIRONMENT.md (hosts without VT-x).
append="console=ttyS0 earlyprintk=ttyS0 noxsave clearcpuid=308,151 ${EXTRA_APPEND:-}"
if [ "${MICROVM:-0}" = 1 ]; then
	machine=microvm
	devices=""
else
	machine=q35
	devices="-drive if=none,id=d0,file=$disk,format=raw,cache=none
		-device virtio-blk-pci,drive=d0,disable-legacy=on
		-device virtio-rng-pci,disable-legacy=on
		-device virtio-serial-pci,disable-legacy=on -device virtconsole,chardev=vc0
		-chardev null,id=vc0"
fi
# shellcheck disable=SC2086 # word splitting of $machine/$devices is wanted
exec timeout --foreground "$timeout" qemu-system-x86_64 -machine "$machine,accel=${ACCEL:-kvm:tcg}" \
	-cpu max -m 256 -smp 2 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$initrd" -append "$append" $devices
