package cpuid

import (
	"fmt"
	"strings"
)

// Reg names one of the four CPUID output registers.
type Reg uint8

// CPUID output registers.
const (
	EAX Reg = iota
	EBX
	ECX
	EDX
)

func (r Reg) String() string {
	switch r {
	case EAX:
		return "EAX"
	case EBX:
		return "EBX"
	case ECX:
		return "ECX"
	case EDX:
		return "EDX"
	}
	return fmt.Sprintf("Reg(%d)", uint8(r))
}

// wordID indexes words. The order is QEMU 7.2's FeatureWord enum (CPUID
// words only): QEMU reports unavailable features word by word in that
// order, and the warnings must come out in the same order.
type wordID int

const (
	w1EDX wordID = iota
	w1ECX
	w7_0EBX
	w7_0ECX
	w7_0EDX
	w7_1EAX
	w8000_0001EDX
	w8000_0001ECX
	w8000_0007EDX
	w8000_0008EBX
	wC000_0001EDX
	wKVM
	wKVMHints
	wSVM
	wXSAVE
	w6EAX
	wXCR0Lo
	wXCR0Hi
	w14_0ECX
	wSGX12_0EAX
	wSGX12_0EBX
	wSGX12_1EAX
	wXSSLo
	wXSSHi
	numWords
)

// word is one 32-bit CPUID register holding feature flags, with QEMU's
// names for its bits ("" where QEMU has none).
type word struct {
	fn, idx uint32
	reg     Reg
	names   [32]string
}

// words is QEMU 7.2's feature_word_info, restricted to CPUID words and to
// the names QEMU 7.2 accepts (see "qemu-system-x86_64 -cpu help").
var words = [numWords]word{
	w1EDX: {fn: 1, reg: EDX, names: [32]string{
		"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce",
		"cx8", "apic", "", "sep", "mtrr", "pge", "mca", "cmov",
		"pat", "pse36", "pn", "clflush", "", "ds", "acpi", "mmx",
		"fxsr", "sse", "sse2", "ss", "ht", "tm", "ia64", "pbe",
	}},
	w1ECX: {fn: 1, reg: ECX, names: [32]string{
		"pni", "pclmulqdq", "dtes64", "monitor", "ds-cpl", "vmx", "smx", "est",
		"tm2", "ssse3", "cid", "", "fma", "cx16", "xtpr", "pdcm",
		"", "pcid", "dca", "sse4.1", "sse4.2", "x2apic", "movbe", "popcnt",
		"tsc-deadline", "aes", "xsave", "" /* osxsave */, "avx", "f16c", "rdrand", "hypervisor",
	}},
	w7_0EBX: {fn: 7, idx: 0, reg: EBX, names: [32]string{
		"fsgsbase", "tsc-adjust", "sgx", "bmi1", "hle", "avx2", "", "smep",
		"bmi2", "erms", "invpcid", "rtm", "", "", "mpx", "",
		"avx512f", "avx512dq", "rdseed", "adx", "smap", "avx512ifma", "pcommit", "clflushopt",
		"clwb", "intel-pt", "avx512pf", "avx512er", "avx512cd", "sha-ni", "avx512bw", "avx512vl",
	}},
	w7_0ECX: {fn: 7, idx: 0, reg: ECX, names: [32]string{
		"", "avx512vbmi", "umip", "pku", "" /* ospke */, "waitpkg", "avx512vbmi2", "",
		"gfni", "vaes", "vpclmulqdq", "avx512vnni", "avx512bitalg", "", "avx512-vpopcntdq", "",
		"la57", "", "", "", "", "", "rdpid", "",
		"bus-lock-detect", "cldemote", "", "movdiri", "movdir64b", "", "sgxlc", "pks",
	}},
	w7_0EDX: {fn: 7, idx: 0, reg: EDX, names: [32]string{
		"", "", "avx512-4vnniw", "avx512-4fmaps", "fsrm", "", "", "",
		"avx512-vp2intersect", "", "md-clear", "", "", "", "serialize", "",
		"tsx-ldtrk", "", "", "arch-lbr", "", "", "amx-bf16", "avx512-fp16",
		"amx-tile", "amx-int8", "spec-ctrl", "stibp", "", "arch-capabilities", "core-capability", "ssbd",
	}},
	w7_1EAX: {fn: 7, idx: 1, reg: EAX, names: [32]string{
		4: "avx-vnni", 5: "avx512-bf16",
	}},
	w8000_0001EDX: {fn: 0x80000001, reg: EDX, names: [32]string{
		// The AMD aliases of CPUID[1].EDX bits have no names of their own:
		// they are copied from CPUID[1].EDX on AMD CPUs.
		11: "syscall", 20: "nx", 22: "mmxext", 25: "fxsr-opt", 26: "pdpe1gb", 27: "rdtscp",
		29: "lm", 30: "3dnowext", 31: "3dnow",
	}},
	w8000_0001ECX: {fn: 0x80000001, reg: ECX, names: [32]string{
		"lahf-lm", "cmp-legacy", "svm", "extapic", "cr8legacy", "abm", "sse4a", "misalignsse",
		"3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", "", "lwp",
		"fma4", "tce", "", "nodeid-msr", "", "tbm", "topoext", "perfctr-core",
		"perfctr-nb", "", "", "", "", "", "", "",
	}},
	w8000_0007EDX: {fn: 0x80000007, reg: EDX, names: [32]string{8: "invtsc"}},
	w8000_0008EBX: {fn: 0x80000008, reg: EBX, names: [32]string{
		0: "clzero", 2: "xsaveerptr", 9: "wbnoinvd", 12: "ibpb", 14: "ibrs", 15: "amd-stibp",
		24: "amd-ssbd", 25: "virt-ssbd", 26: "amd-no-ssb",
	}},
	wC000_0001EDX: {fn: 0xC0000001, reg: EDX, names: [32]string{
		2: "xstore", 3: "xstore-en", 6: "xcrypt", 7: "xcrypt-en",
		8: "ace2", 9: "ace2-en", 10: "phe", 11: "phe-en", 12: "pmm", 13: "pmm-en",
	}},
	// KVM's paravirtual features. "kvmclock" names two bits: the old and
	// the new kvmclock MSRs.
	wKVM: {fn: 0x40000001, reg: EAX, names: [32]string{
		0: "kvmclock", 1: "kvm-nopiodelay", 2: "kvm-mmu", 3: "kvmclock",
		4: "kvm-asyncpf", 5: "kvm-steal-time", 6: "kvm-pv-eoi", 7: "kvm-pv-unhalt",
		9: "kvm-pv-tlb-flush", 11: "kvm-pv-ipi", 12: "kvm-poll-control", 13: "kvm-pv-sched-yield",
		14: "kvm-asyncpf-int", 15: "kvm-msi-ext-dest-id", 24: "kvmclock-stable-bit",
	}},
	wKVMHints: {fn: 0x40000001, reg: EDX, names: [32]string{0: "kvm-hint-dedicated"}},
	wSVM: {fn: 0x8000000A, reg: EDX, names: [32]string{
		"npt", "lbrv", "svm-lock", "nrip-save", "tsc-scale", "vmcb-clean", "flushbyasid", "decodeassists",
		10: "pause-filter", 12: "pfthreshold", 13: "avic", 15: "v-vmsave-vmload", 16: "vgif",
		28: "svme-addr-chk",
	}},
	wXSAVE:      {fn: 0xD, idx: 1, reg: EAX, names: [32]string{"xsaveopt", "xsavec", "xgetbv1", "xsaves", "xfd"}},
	w6EAX:       {fn: 6, reg: EAX, names: [32]string{2: "arat"}},
	wXCR0Lo:     {fn: 0xD, idx: 0, reg: EAX},
	wXCR0Hi:     {fn: 0xD, idx: 0, reg: EDX},
	w14_0ECX:    {fn: 0x14, idx: 0, reg: ECX, names: [32]string{31: "intel-pt-lip"}},
	wSGX12_0EAX: {fn: 0x12, idx: 0, reg: EAX, names: [32]string{"sgx1", "sgx2"}},
	wSGX12_0EBX: {fn: 0x12, idx: 0, reg: EBX, names: [32]string{"sgx-exinfo"}},
	wSGX12_1EAX: {fn: 0x12, idx: 1, reg: EAX, names: [32]string{
		1: "sgx-debug", 2: "sgx-mode64", 4: "sgx-provisionkey", 5: "sgx-tokenkey", 7: "sgx-kss",
	}},
	wXSSLo: {fn: 0xD, idx: 1, reg: ECX},
	wXSSHi: {fn: 0xD, idx: 1, reg: EDX},
}

// aliases are the other names QEMU 7.2 accepts for a feature
// (object_property_add_alias in x86_cpu_initfn), after "_" -> "-".
var aliases = map[string]string{
	"sse3":     "pni",
	"pclmuldq": "pclmulqdq",
	"sse4-1":   "sse4.1",
	"sse4-2":   "sse4.2",
	"xd":       "nx",
	"ffxsr":    "fxsr-opt",
	"i64":      "lm",
}

// msrFeatureNames are QEMU 7.2's names for bits of feature MSRs (VMX
// capabilities, IA32_ARCH_CAPABILITIES, ...), not of CPUID. They are
// accepted so that a command line QEMU takes is taken here too, but they
// change nothing: govmm does not emulate those MSRs' contents and offers
// no nested VMX.
const msrFeatureNames = `
	rdctl-no ibrs-all rsba skip-l1dfl-vmentry ssb-no mds-no pschange-mc-no tsx-ctrl taa-no
	split-lock-detect full-width-write
	vmx-activity-hlt vmx-activity-shutdown vmx-activity-wait-sipi vmx-apicv-register
	vmx-apicv-vid vmx-apicv-x2apic vmx-apicv-xapic vmx-cr3-load-noexit vmx-cr3-store-noexit
	vmx-cr8-load-exit vmx-cr8-store-exit vmx-desc-exit vmx-encls-exit vmx-entry-ia32e-mode
	vmx-entry-load-bndcfgs vmx-entry-load-efer vmx-entry-load-pat
	vmx-entry-load-perf-global-ctrl vmx-entry-load-pkrs vmx-entry-load-rtit-ctl
	vmx-entry-noload-debugctl vmx-ept vmx-ept-1gb vmx-ept-2mb vmx-ept-advanced-exitinfo
	vmx-ept-execonly vmx-eptad vmx-eptp-switching vmx-exit-ack-intr vmx-exit-clear-bndcfgs
	vmx-exit-clear-rtit-ctl vmx-exit-load-efer vmx-exit-load-pat
	vmx-exit-load-perf-global-ctrl vmx-exit-load-pkrs vmx-exit-nosave-debugctl
	vmx-exit-save-efer vmx-exit-save-pat vmx-exit-save-preemption-timer vmx-flexpriority
	vmx-hlt-exit vmx-ins-outs vmx-intr-exit vmx-invept vmx-invept-all-context
	vmx-invept-single-context vmx-invept-single-context-noglobals vmx-invlpg-exit
	vmx-invpcid-exit vmx-invvpid vmx-invvpid-all-context vmx-invvpid-single-addr
	vmx-io-bitmap vmx-io-exit vmx-monitor-exit vmx-movdr-exit vmx-msr-bitmap vmx-mtf
	vmx-mwait-exit vmx-nmi-exit vmx-page-walk-4 vmx-page-walk-5 vmx-pause-exit vmx-ple
	vmx-pml vmx-posted-intr vmx-preemption-timer vmx-rdpmc-exit vmx-rdrand-exit
	vmx-rdseed-exit vmx-rdtsc-exit vmx-rdtscp-exit vmx-secondary-ctls vmx-shadow-vmcs
	vmx-store-lma vmx-true-ctls vmx-tsc-offset vmx-tsc-scaling vmx-unrestricted-guest
	vmx-vintr-pending vmx-vmfunc vmx-vmwrite-vmexit-fields vmx-vnmi vmx-vnmi-pending
	vmx-vpid vmx-wbinvd-exit vmx-xsaves vmx-zero-len-inject
`

var msrFeatures = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(msrFeatureNames) {
		m[n] = true
	}
	return m
}()

// isMSRFeature reports whether name (canonical form) is a feature-MSR bit.
func isMSRFeature(name string) bool { return msrFeatures[name] }

// bitRef is one feature bit.
type bitRef struct {
	w   wordID
	bit uint
}

// byName maps canonical names to their bits (kvmclock has two).
var byName = func() map[string][]bitRef {
	m := map[string][]bitRef{}
	for w := range numWords {
		for b, n := range words[w].names {
			if n != "" {
				m[n] = append(m[n], bitRef{wordID(w), uint(b)})
			}
		}
	}
	return m
}()

// canonical turns a user-given feature name into QEMU's canonical one:
// "_" and "-" are the same to QEMU (feat2prop), then aliases apply.
func canonical(name string) string {
	n := strings.ReplaceAll(name, "_", "-")
	if a, ok := aliases[n]; ok {
		return a
	}
	return n
}

// Lookup returns where a feature lives: its CPUID function, index,
// register and bit. ok is false for names that are not CPUID features
// (unknown names and feature-MSR names). For "kvmclock", which names two
// bits, it returns the first (bit 0); Apply sets both.
func Lookup(name string) (fn, index uint32, reg Reg, bit uint, ok bool) {
	refs := byName[canonical(name)]
	if len(refs) == 0 {
		return 0, 0, 0, 0, false
	}
	w := words[refs[0].w]
	return w.fn, w.idx, w.reg, refs[0].bit, true
}

// Known reports whether QEMU 7.2 knows name as a -cpu feature flag
// (a CPUID bit or a feature-MSR bit), with its aliases and "_" spellings.
func Known(name string) bool {
	c := canonical(name)
	return len(byName[c]) > 0 || isMSRFeature(c)
}

// describe is QEMU's feature_word_description plus the bit's name, as
// in its warnings: "CPUID.01H:ECX.pni [bit 0]".
func describe(w wordID, bit uint) string {
	wi := words[w]
	s := fmt.Sprintf("CPUID.%02XH:%s", wi.fn, wi.reg)
	if n := wi.names[bit]; n != "" {
		s += "." + n
	}
	return fmt.Sprintf("%s [bit %d]", s, bit)
}
