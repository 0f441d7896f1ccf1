# govmm: build, test, run and benchmark.
#
#   make            build bin/govmm (static, CGO_ENABLED=0)
#   make deps       install what the tests need (Debian packages) if missing
#   make test       deps + payload guests + go vet + go test -race ./...
#   make run        boot the hello payload guest under govmm
#   make bench      govmm against qemu-system-x86_64, side by side
#   make fuzz       run every fuzz target for FUZZTIME each

GO       ?= go
BIN      := bin/govmm
FUZZTIME ?= 10s
export CGO_ENABLED := 0

# Debian packages the tests use: gcc/make/binutils build the payload guests,
# qemu is the reference VMM for differential tests, qemu-utils the qcow2
# oracle, acpica-tools decodes our AML, cpio/socat for end-to-end tests.
DEB_PKGS := gcc make binutils qemu-system-x86 qemu-utils acpica-tools cpio socat strace

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

test: deps payloads
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -timeout 30m ./...

run: $(BIN) payloads
	./$(BIN) -m 64 -nographic -no-reboot -kernel guest/payload/build/hello.elf \
		-device isa-debug-exit,iobase=0x501,iosize=2; \
	status=$$?; echo "govmm exited with status $$status (67 = the payload wrote 0x21 to isa-debug-exit)"; \
	test $$status -eq 67

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

FORCE:
.PHONY: all deps payloads test run fuzz clean FORCE
