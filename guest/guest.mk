# Linux test guests: included from the top-level Makefile (paths are
# relative to the repository root).
#
#   make kernel      build (or find in the cache) the test kernel; prints its paths
#   make initramfs   build the guest agent and $(INITRAMFS) around it
#
# KERNEL_VMLINUX (ELF with a PVH entry note) and KERNEL_BZIMAGE (LZ4) live in
# a cache outside the repository, keyed by testdata/kernel/govmm.config, the
# linux-source-6.1 package version and build.sh; see testdata/kernel/build.sh.

GO          ?= go
GUEST_BUILD ?= build
AGENT       := $(GUEST_BUILD)/agent
INITRAMFS   := $(GUEST_BUILD)/initramfs.cpio

# Evaluated once, and only when used: build.sh --dir just hashes the inputs.
KERNEL_DIR = $(eval KERNEL_DIR := $$(shell testdata/kernel/build.sh --dir))$(KERNEL_DIR)
KERNEL_VMLINUX = $(KERNEL_DIR)/vmlinux
KERNEL_BZIMAGE = $(KERNEL_DIR)/bzImage

kernel:
	@testdata/kernel/build.sh

# Go's build cache makes these cheap when nothing changed.
$(AGENT): FORCE
	@mkdir -p $(GUEST_BUILD)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags='-s -w' -o $(AGENT) ./guest/agent

$(INITRAMFS): $(AGENT) FORCE
	$(GO) run ./guest/initramfs -o $(INITRAMFS) -agent $(AGENT)

initramfs: $(INITRAMFS)

FORCE:
.PHONY: kernel initramfs FORCE
