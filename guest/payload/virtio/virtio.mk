# virtio.elf and virtiobench.elf: the virtio-pci payload driver. Included
# from ../Makefile, so paths are relative to guest/payload.
#
# The driver is 64-bit C (virtio/*.c) linked at 0x200000 into a flat binary
# that virtio/virtio.S .incbin's into the usual ELF32 payload; user_main in
# CPL 3 jumps to it. BENCH=1 selects the benchmark build.
VIRTIO_SRC := virtio/main.c virtio/virtio.c virtio/rt.c virtio/start.S
VIRTIO_HDR := virtio/rt.h virtio/virtio.h
VIRTIO_CFLAGS := -m64 -ffreestanding -fno-pic -fno-pie -no-pie -mno-red-zone -mcmodel=small -O2 \
	-nostdlib -static -fno-stack-protector -mgeneral-regs-only -fno-tree-loop-distribute-patterns \
	-fno-asynchronous-unwind-tables -std=gnu11 -Wall -Wextra \
	-Wl,-T,virtio/blob.ld -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack \
	-Wl,--no-warn-rwx-segments

all: $(OUT)/virtio.elf $(OUT)/virtiobench.elf

$(OUT)/virtio/virtio.blob: VIRTIO_BENCH := 0
$(OUT)/virtio/virtiobench.blob: VIRTIO_BENCH := 1

# The blob ELF, its flat binary (.bin, ending where .bss starts) and
# .inc with the .bss size for virtio.S.
$(OUT)/virtio/%.blob: $(VIRTIO_SRC) $(VIRTIO_HDR) virtio/blob.ld virtio/virtio.mk
	@mkdir -p $(OUT)/virtio
	gcc $(VIRTIO_CFLAGS) -DBENCH=$(VIRTIO_BENCH) -o $@ $(VIRTIO_SRC)
	objcopy -O binary $@ $@.bin
	@set -e; start=$$(nm $@ | awk '$$3=="__bss_start"{print $$1}'); \
	end=$$(nm $@ | awk '$$3=="__bss_end"{print $$1}'); \
	size=$$(stat -c %s $@.bin); \
	if [ $$((0x$$start - 0x200000)) -ne $$size ]; then \
		echo "$@: flat binary is $$size bytes, .bss starts at 0x$$start" >&2; exit 1; fi; \
	echo ".set CBLOB_BSS_SIZE, 0x$$end - 0x$$start" > $@.inc

$(OUT)/virtio.elf $(OUT)/virtiobench.elf: $(OUT)/%.elf: $(OUT)/virtio/%.blob virtio/virtio.S virtio/payload.ld common.S long.S
	gcc -m32 -nostdlib -static -ffreestanding -fno-pic -no-pie \
		-Wl,-T,virtio/payload.ld -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack \
		-Wl,--no-warn-rwx-segments \
		-DBLOB_BIN='"$<.bin"' -DBLOB_INC='"$<.inc"' -I. -o $@ virtio/virtio.S
