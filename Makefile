# govmm: build, test, run and benchmark.
#
#   make            build bin/govmm (static, CGO_ENABLED=0)
#   make deps       install what the tests need (Debian packages) if missing
#   make test       deps + payload guests + go vet + go test -race ./...
#   make run        boot the hello payload guest under govmm
#   make bench      govmm against qemu-system-x86_64, side by side
#   make fuzz       run every fuzz target for FUZZTIME each
#   make kernel     build the Linux test kernel (cached outside the repo)
#   make initramfs  build the guest test agent into build/initramfs.cpio
#   make linux      boot the test kernel with the agent under govmm

GO       ?= go
BIN      := bin/govmm
FUZZTIME ?= 10s
export CGO_ENABLED := 0

# Debian packages the tests use: gcc/make/binutils build the payload guests,
# qemu is the reference VMM for differential tests, qemu-utils the qcow2
# oracle, acpica-tools decodes our AML, cpio/socat for end-to-end tests; the
# rest build the Linux test kernel from Debian's linux-source-6.1.
DEB_PKGS := gcc make binutils qemu-system-x86 qemu-utils acpica-tools cpio socat strace \
	linux-source-6.1 flex bison bc libelf-dev lz4 xz-utils perl

include guest/guest.mk

all: $(BIN)

$(BIN): FORCE
	$(GO) build -trimpath -o $(BIN) ./cmd/govmm

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

payloads:
	$(MAKE) -s -C guest/payload

# The Linux end-to-end tests find the kernel and initramfs through these.
export GOVMM_TEST_KERNEL = $(KERNEL_VMLINUX)
export GOVMM_TEST_INITRAMFS = $(abspath $(INITRAMFS))

test: deps payloads kernel initramfs
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -timeout 30m ./...

run: $(BIN) payloads
	./$(BIN) -m 64 -nographic -no-reboot -kernel guest/payload/build/hello.elf \
		-device isa-debug-exit,iobase=0x501,iosize=2; \
	status=$$?; echo "govmm exited with status $$status (67 = the payload wrote 0x21 to isa-debug-exit)"; \
	test $$status -eq 67

linux: $(BIN) kernel initramfs
	@rm -f build/linux-disk.img && truncate -s 64M build/linux-disk.img
	./$(BIN) -m 512 -smp 2 -kernel $(KERNEL_VMLINUX) -initrd $(INITRAMFS) \
		-append "console=ttyS0 noxsave clearcpuid=308,151 tsc=reliable $(APPEND)" \
		-drive file=build/linux-disk.img,if=virtio,format=raw -device virtio-rng-pci -nographic

# govmm against qemu-system-x86_64 on the same payloads, alternating runs;
# writes testdata/bench/latest.{md,json}. BENCHFLAGS=-out "" only prints.
BENCHFLAGS ?=
bench: deps $(BIN) payloads
	$(GO) run ./cmd/vmbench -govmm $(BIN) $(BENCHFLAGS)

fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin build
	$(MAKE) -s -C guest/payload clean

.PHONY: all deps payloads test run linux bench fuzz clean FORCE
