package cpuid

import (
	"fmt"

	"github.com/govmm/govmm/kvm"
)

// Feature is one -cpu feature flag override, in command-line order.
type Feature struct {
	Name string // a QEMU name or alias; "_" and "-" are the same
	On   bool
	// Legacy marks the "+feat"/"-feat" spelling. QEMU applies those after
	// every "feat=on|off", pluses first and then minuses, so "-feat" wins
	// over everything; "feat=on|off" ones apply in order, the last winning.
	Legacy bool
}

// Model names.
const (
	ModelHost   = "host"
	ModelMax    = "max"
	ModelQEMU64 = "qemu64"
)

// Bits used by the policy below, by register.
const (
	// CPUID[1].EDX
	bitMCE   = 1 << 7
	bitMTRR  = 1 << 12
	bitMCA   = 1 << 14
	bitPAT   = 1 << 16
	bitPSE36 = 1 << 17
	bitCLFSH = 1 << 19
	bitACPI  = 1 << 22
	// PPRO_FEATURES: fpu de pse tsc msr pae mce cx8 apic sep pge cmov pat
	// mmx fxsr sse sse2.
	pproFeatures = 1<<0 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | bitMCE | 1<<8 | 1<<9 | 1<<11 |
		1<<13 | 1<<15 | bitPAT | 1<<23 | 1<<24 | 1<<25 | 1<<26
	// The CPUID[1].EDX bits AMD repeats in CPUID[0x80000001].EDX.
	amdAlias = 0x0183F3FF

	// CPUID[1].ECX
	bitPNI    = 1 << 0
	bitMON    = 1 << 3
	bitCX16   = 1 << 13
	bitX2APIC = 1 << 21
	bitTSCDL  = 1 << 24
	bitXSAVE  = 1 << 26
	bitAVX    = 1 << 28
	bitHV     = 1 << 31

	bitARAT = 1 << 2 // CPUID[6].EAX

	// CPUID[7,0]
	bitSGX    = 1 << 2  // EBX
	bitMPX    = 1 << 14 // EBX
	bitAVX512 = 1 << 16 // EBX avx512f
	bitIPT    = 1 << 25 // EBX intel-pt
	bitPKU    = 1 << 3  // ECX
	bitLA57   = 1 << 16 // ECX
	bitARCHLB = 1 << 19 // EDX arch-lbr
	bitAMXT   = 1 << 24 // EDX amx-tile

	// CPUID[0x80000001]
	bitSYSC  = 1 << 11 // EDX
	bitNX    = 1 << 20 // EDX
	bitLM    = 1 << 29 // EDX
	bitLAHF  = 1 << 0  // ECX
	bitSVM   = 1 << 2  // ECX
	bitTOPOX = 1 << 22 // ECX

	// CPUID[0x40000001]: kvmclock (both bits), kvm-nopiodelay,
	// kvm-asyncpf, kvm-steal-time, kvm-pv-eoi, kvmclock-stable-bit: the
	// ones QEMU's kvm_default_props turn on.
	kvmDefault   = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<24
	hintRealtime = 1 << 0 // EDX kvm-hint-dedicated
)

// qemu64 is QEMU 7.2's builtin "qemu64" definition.
var qemu64 = struct {
	level, xlevel       uint32
	vendor              string
	family, model, step uint32
	features            [numWords]uint32
	brand               string
}{
	level:  0xd,
	xlevel: 0x8000000A,
	vendor: "AuthenticAMD",
	family: 15, model: 107, step: 1,
	features: [numWords]uint32{
		w1EDX:         pproFeatures | bitMTRR | bitCLFSH | bitMCA | bitPSE36,
		w1ECX:         bitPNI | bitCX16,
		w8000_0001EDX: bitLM | bitSYSC | bitNX,
		w8000_0001ECX: bitLAHF | bitSVM,
	},
	brand: "QEMU Virtual CPU version 2.5+",
}

// dependencies are QEMU 7.2's feature_dependencies among CPUID words: a
// feature in "to" is dropped when the one in "from" is off. (The others
// are about feature MSRs, which are not modelled.)
var dependencies = []struct {
	fromW    wordID
	fromMask uint32
	toW      wordID
	toMask   uint32
}{
	{w7_0EBX, bitIPT, w14_0ECX, ^uint32(0)},
	{w8000_0001ECX, bitSVM, wSVM, ^uint32(0)},
	// QEMU 7.2 has no SGX dependencies yet (later versions drop sgxlc and
	// leaf 0x12 without sgx); checked against its warnings.
}

// Apply returns the CPUID table for the model with the feature overrides,
// built from KVM's supported table (KVM_GET_SUPPORTED_CPUID), and the
// warnings QEMU would print for it (the text after "warning: ", e.g.
// "host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]"),
// in QEMU's order. It does not modify supported.
//
// Unknown models and feature names are errors. Feature-MSR names that
// QEMU accepts (vmx-*, rdctl-no, ...) are accepted and ignored.
func Apply(supported []kvm.CPUIDEntry, model string, features []Feature) ([]kvm.CPUIDEntry, []string, error) {
	switch model {
	case ModelHost, ModelMax, ModelQEMU64:
	default:
		return nil, nil, fmt.Errorf("unknown CPU model '%s'", model)
	}

	// Resolve every name first, so a bad one changes nothing.
	type op struct {
		refs []bitRef
		on   bool
	}
	var props, plus, minus []op
	for _, f := range features {
		c := canonical(f.Name)
		refs := byName[c]
		if len(refs) == 0 {
			if isMSRFeature(c) {
				continue
			}
			return nil, nil, fmt.Errorf("CPU feature '%s' not found", f.Name)
		}
		o := op{refs, f.On}
		switch {
		case !f.Legacy:
			props = append(props, o)
		case f.On:
			plus = append(plus, o)
		default:
			minus = append(minus, o)
		}
	}

	sup := supportedWords(supported)
	var feat, user [numWords]uint32
	if model == ModelQEMU64 {
		feat = qemu64.features
		// QEMU's kvm_default_props, and the hypervisor bit every model
		// gets (x86_cpu_load_model).
		feat[wKVM] |= kvmDefault
		feat[w1ECX] |= bitX2APIC | bitHV
		feat[w1ECX] &^= bitMON
		feat[w1EDX] &^= bitACPI
		feat[w8000_0001ECX] &^= bitSVM
	} else {
		// KVM's view of the host as it is, plus the bits KVM does not
		// report but QEMU's -cpu host/max enable.
		for w := range numWords {
			wi := words[w]
			feat[w] = reg(supported, wi.fn, wi.idx, wi.reg)
		}
		feat[w1ECX] |= bitHV | bitTSCDL
		feat[w6EAX] |= bitARAT
	}

	for _, list := range [][]op{props, plus, minus} {
		for _, o := range list {
			for _, r := range o.refs {
				if o.on {
					feat[r.w] |= 1 << r.bit
				} else {
					feat[r.w] &^= 1 << r.bit
				}
				user[r.w] |= 1 << r.bit
			}
		}
	}

	var warnings []string
	for _, d := range dependencies {
		if feat[d.fromW]&d.fromMask != 0 {
			continue
		}
		gone := feat[d.toW] & d.toMask
		warnings = appendBits(warnings, "This feature depends on other features that were not requested: ", d.toW, gone&user[d.toW])
		feat[d.toW] &^= gone
	}

	// Levels are raised from the requested features, before filtering,
	// as QEMU does (x86_cpu_expand_features).
	level, func7 := qemu64.level, uint32(0)
	if feat[w7_0EBX]&bitSGX != 0 {
		level = max(level, 0x12)
	}
	if feat[w7_0EBX]&bitIPT != 0 {
		level = max(level, 0x14)
	}
	if feat[w7_1EAX] != 0 {
		func7 = 1
	}
	xlevel2 := uint32(0)
	if feat[wC000_0001EDX] != 0 {
		xlevel2 = 0xC0000001
	}

	enableXSAVEComponents(&feat)

	// x86_cpu_filter_features: drop what KVM cannot do, word by word.
	for w := range numWords {
		gone := feat[w] &^ sup[w]
		warnings = appendBits(warnings, "host doesn't support requested feature: ", wordID(w), gone)
		feat[w] &^= gone
	}

	var vendor string
	if model == ModelQEMU64 {
		vendor = qemu64.vendor
	} else {
		vendor = Vendor(supported)
	}
	if vendor == "AuthenticAMD" {
		feat[w8000_0001EDX] = feat[w8000_0001EDX]&^amdAlias | feat[w1EDX]&amdAlias
	}

	var out []kvm.CPUIDEntry
	if model == ModelQEMU64 {
		out = buildQEMU64(supported, &feat, level, func7, xlevel2)
	} else {
		out = buildHost(supported, &feat)
	}
	return out, warnings, nil
}

// appendBits adds one warning per set bit of mask, lowest first.
func appendBits(ws []string, prefix string, w wordID, mask uint32) []string {
	for b := range uint(32) {
		if mask&(1<<b) != 0 {
			ws = append(ws, prefix+describe(w, b))
		}
	}
	return ws
}

// supportedWords is what KVM can give for each word, with the fixups of
// QEMU 7.2's kvm_arch_get_supported_cpuid for bits KVM does not report
// but can provide. It assumes the in-kernel irqchip (not split), as
// govmm uses, and KVM_CAP_TSC_DEADLINE_TIMER.
func supportedWords(t []kvm.CPUIDEntry) [numWords]uint32 {
	var s [numWords]uint32
	for w := range numWords {
		wi := words[w]
		s[w] = reg(t, wi.fn, wi.idx, wi.reg)
	}
	s[w1EDX] |= bitMTRR | bitPAT | bitMCE | bitMCA
	s[w1ECX] |= bitHV | bitTSCDL
	s[w6EAX] |= bitARAT
	s[w8000_0001ECX] |= bitTOPOX
	s[w8000_0001EDX] |= s[w1EDX] & amdAlias
	s[wKVMHints] |= hintRealtime
	return s
}

// xsaveComponents is QEMU's x86_ext_save_areas: which feature enables
// each XSAVE state component.
var xsaveComponents = []struct {
	comp uint
	w    wordID
	mask uint32
}{
	{0, w1ECX, bitXSAVE}, // x87
	{1, w1ECX, bitXSAVE}, // SSE
	{2, w1ECX, bitAVX},   // YMM
	{3, w7_0EBX, bitMPX}, // BNDREGS
	{4, w7_0EBX, bitMPX}, // BNDCSR
	{5, w7_0EBX, bitAVX512},
	{6, w7_0EBX, bitAVX512},
	{7, w7_0EBX, bitAVX512},
	{9, w7_0ECX, bitPKU},
	{15, w7_0EDX, bitARCHLB}, // supervisor state (XSS)
	{17, w7_0EDX, bitAMXT},
	{18, w7_0EDX, bitAMXT},
}

const xssMask = 1 << 15 // components that live in IA32_XSS, not XCR0

// enableXSAVEComponents is QEMU's x86_cpu_enable_xsave_components: the
// XSAVE components follow the features, not KVM's table.
func enableXSAVEComponents(feat *[numWords]uint32) {
	feat[wXCR0Lo], feat[wXCR0Hi], feat[wXSSLo], feat[wXSSHi] = 0, 0, 0, 0
	if feat[w1ECX]&bitXSAVE == 0 {
		return
	}
	var mask uint32
	for _, c := range xsaveComponents {
		if feat[c.w]&c.mask != 0 {
			mask |= 1 << c.comp
		}
	}
	feat[wXCR0Lo] = mask &^ xssMask
	feat[wXSSLo] = mask & xssMask
}

// xsaveSize is QEMU's xsave_area_size, with component sizes and offsets
// from KVM's leaf 0xD sub-leaves.
func xsaveSize(t []kvm.CPUIDEntry, mask uint64, compacted bool) uint32 {
	ret := uint64(512 + 64) // legacy area + header
	for i := uint32(2); i < 64; i++ {
		if mask&(1<<i) == 0 {
			continue
		}
		size, off := uint64(reg(t, 0xd, i, EAX)), uint64(reg(t, 0xd, i, EBX))
		if compacted {
			off = ret
		}
		ret = max(ret, off+size)
	}
	return uint32(min(ret, 1<<32-1))
}

// buildHost writes the features into a copy of KVM's table and makes the
// dependent leaves agree.
func buildHost(supported []kvm.CPUIDEntry, feat *[numWords]uint32) []kvm.CPUIDEntry {
	out := append([]kvm.CPUIDEntry(nil), supported...)
	for w := range numWords {
		wi := words[w]
		out = setReg(out, wi.fn, wi.idx, wi.reg, feat[w])
	}
	// OSXSAVE and OSPKE mirror CR4; KVM keeps them up to date itself.
	if e := find(out, 1, 0); e != nil {
		e.ECX &^= 1 << 27
	}
	if e := find(out, 7, 0); e != nil {
		e.ECX &^= 1 << 4
	}
	fixDependentLeaves(out, supported, feat)
	return out
}

// fixDependentLeaves clears or recomputes the leaves that describe a
// feature when that feature is off, as QEMU's cpu_x86_cpuid does.
func fixDependentLeaves(out, supported []kvm.CPUIDEntry, feat *[numWords]uint32) {
	if feat[w1ECX]&bitXSAVE == 0 {
		zeroFunction(out, 0xd)
	} else {
		xcr0 := uint64(feat[wXCR0Hi])<<32 | uint64(feat[wXCR0Lo])
		xss := uint64(feat[wXSSHi])<<32 | uint64(feat[wXSSLo])
		if e := find(out, 0xd, 0); e != nil {
			e.EBX = xsaveSize(supported, xcr0, false)
			e.ECX = e.EBX
		}
		if e := find(out, 0xd, 1); e != nil {
			e.EBX = xsaveSize(supported, xcr0|xss, true)
		}
		for i := range out {
			e := &out[i]
			if e.Function == 0xd && e.Index >= 2 && (e.Index >= 64 || (xcr0|xss)&(1<<e.Index) == 0) {
				e.EAX, e.EBX, e.ECX, e.EDX = 0, 0, 0, 0
			}
		}
	}
	if feat[w8000_0001ECX]&bitSVM == 0 {
		zeroFunction(out, 0x8000000A)
	}
	if feat[w7_0EBX]&bitIPT == 0 {
		zeroFunction(out, 0x14)
	}
	if feat[w7_0EBX]&bitSGX == 0 {
		zeroFunction(out, 0x12)
	}
	// Without LA57 the guest has 48-bit linear addresses.
	if e := find(out, 0x80000008, 0); e != nil && feat[w7_0ECX]&bitLA57 == 0 && (e.EAX>>8)&0xff == 57 {
		e.EAX = e.EAX&^0xff00 | 48<<8
	}
}

// qemuPhysBits is TCG_PHYS_ADDR_BITS, QEMU's default phys-bits for
// 64-bit models under -M pc and q35 (-M microvm uses the host's).
const qemuPhysBits = 40

// buildQEMU64 builds QEMU's qemu64 CPUID from scratch; only cache-free
// host data (XSAVE layout, SGX/PT leaves when enabled) comes from KVM.
func buildQEMU64(supported []kvm.CPUIDEntry, feat *[numWords]uint32, level, func7, xlevel2 uint32) []kvm.CPUIDEntry {
	m := qemu64
	version := m.step | (m.model&0xf)<<4 | (m.model>>4)<<16
	if m.family > 0xf {
		version |= 0xf<<8 | (m.family-0xf)<<20
	} else {
		version |= m.family << 8
	}
	vb, vd, vc := vendorRegs(m.vendor)

	out := []kvm.CPUIDEntry{entry(0, 0, level, vb, vc, vd)}
	for fn := uint32(1); fn <= level; fn++ {
		switch fn {
		case 1:
			// EBX: CLFLUSH line size 8 quadwords; the caller adds the APIC
			// ID and logical processor count.
			out = append(out, entry(1, 0, version, 8<<8, feat[w1ECX], feat[w1EDX]))
		case 5:
			// QEMU's fixed MWAIT leaf: extensions enumerated, interrupts
			// as break events, whether MONITOR is on or not.
			out = append(out, entry(5, 0, 0, 0, 3, 0))
		case 6:
			out = append(out, entry(6, 0, feat[w6EAX], 0, 0, 0))
		case 7:
			out = append(out,
				entry(7, 0, func7, feat[w7_0EBX], feat[w7_0ECX], feat[w7_0EDX]),
				entry(7, 1, feat[w7_1EAX], 0, 0, 0))
		case 0xb:
			// Topology: the caller fills these in per vCPU.
			for i := uint32(0); i < 3; i++ {
				out = append(out, entry(0xb, i, 0, 0, i, 0))
			}
		case 0xd:
			out = append(out, qemu64XSAVE(supported, feat)...)
		case 0x12:
			out = append(out, copyOrZero(supported, 0x12)...)
		case 0x14:
			out = append(out, copyOrZero(supported, 0x14)...)
		default:
			// Leaves 2 and 4 (Intel cache descriptions) are zero for an
			// AMD model (QEMU's vendor-cpuid-only), and so is the rest.
			out = append(out, entry(fn, 0, 0, 0, 0, 0))
		}
	}

	kb, kc, kd := vendorRegs("KVMKVMKVM")
	out = append(out,
		entry(0x40000000, 0, 0x40000001, kb, kc, kd),
		entry(0x40000001, 0, feat[wKVM], 0, 0, feat[wKVMHints]))

	out = append(out, entry(0x80000000, 0, m.xlevel, vb, vc, vd),
		entry(0x80000001, 0, version, 0, feat[w8000_0001ECX], feat[w8000_0001EDX]))
	out = append(out, brandEntries(m.brand)...)
	// QEMU's legacy AMD L1/L2/L3 cache and TLB descriptions.
	out = append(out,
		entry(0x80000005, 0, 0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140),
		entry(0x80000006, 0, 0, 0x42004200, 0x02008140, 0x00808140),
		entry(0x80000007, 0, 0, 0, 0, feat[w8000_0007EDX]))
	addr := uint32(qemuPhysBits)
	if feat[w8000_0001EDX]&bitLM != 0 {
		if feat[w7_0ECX]&bitLA57 != 0 {
			addr |= 57 << 8
		} else {
			addr |= 48 << 8
		}
	} else {
		addr = 32
		if feat[w1EDX]&(bitPSE36|1<<6) != 0 {
			addr = 36
		}
	}
	out = append(out, entry(0x80000008, 0, addr, feat[w8000_0008EBX], 0, 0),
		entry(0x80000009, 0, 0, 0, 0, 0))
	if feat[w8000_0001ECX]&bitSVM != 0 {
		// SVM revision 1, 16 ASIDs.
		out = append(out, entry(0x8000000A, 0, 1, 0x10, 0, feat[wSVM]))
	} else {
		out = append(out, entry(0x8000000A, 0, 0, 0, 0, 0))
	}
	if xlevel2 != 0 {
		out = append(out, entry(0xC0000000, 0, xlevel2, 0, 0, 0),
			entry(0xC0000001, 0, version, 0, 0, feat[wC000_0001EDX]))
	}

	// Feature words of leaves copied from KVM (0x12, 0x14) follow the
	// features too.
	for _, w := range []wordID{w14_0ECX, wSGX12_0EAX, wSGX12_0EBX, wSGX12_1EAX} {
		wi := words[w]
		if e := find(out, wi.fn, wi.idx); e != nil {
			*regPtr(e, wi.reg) = feat[w]
		}
	}
	return out
}

// copyOrZero returns KVM's entries for fn, or one zero entry.
func copyOrZero(supported []kvm.CPUIDEntry, fn uint32) []kvm.CPUIDEntry {
	if s := subleaves(supported, fn); len(s) > 0 {
		return s
	}
	return []kvm.CPUIDEntry{entry(fn, 0, 0, 0, 0, 0)}
}

// qemu64XSAVE is leaf 0xD for the enabled components.
func qemu64XSAVE(supported []kvm.CPUIDEntry, feat *[numWords]uint32) []kvm.CPUIDEntry {
	if feat[w1ECX]&bitXSAVE == 0 {
		return []kvm.CPUIDEntry{entry(0xd, 0, 0, 0, 0, 0), entry(0xd, 1, 0, 0, 0, 0)}
	}
	xcr0 := uint64(feat[wXCR0Hi])<<32 | uint64(feat[wXCR0Lo])
	xss := uint64(feat[wXSSHi])<<32 | uint64(feat[wXSSLo])
	size := xsaveSize(supported, xcr0, false)
	out := []kvm.CPUIDEntry{
		entry(0xd, 0, feat[wXCR0Lo], size, size, feat[wXCR0Hi]),
		entry(0xd, 1, feat[wXSAVE], xsaveSize(supported, xcr0|xss, true), feat[wXSSLo], feat[wXSSHi]),
	}
	for i := uint32(2); i < 64; i++ {
		if (xcr0|xss)&(1<<i) == 0 {
			continue
		}
		if e := find(supported, 0xd, i); e != nil {
			out = append(out, *e)
		}
	}
	return out
}
