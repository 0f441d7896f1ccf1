// Package cpuid builds the CPUID table a -cpu model and its feature flags
// give, the way QEMU 7.2 does under KVM.
//
// Apply starts from the model: for "host" and "max", KVM's supported table
// as it is (plus the hypervisor, tsc-deadline and arat bits QEMU adds);
// for "qemu64", QEMU's builtin definition (AuthenticAMD, family 15 model
// 107 stepping 1, level 0xd, xlevel 0x8000000A, "QEMU Virtual CPU version
// 2.5+") with QEMU's KVM defaults (x2apic, kvmclock & co. on, svm and
// monitor off). It then applies the feature overrides, drops what KVM
// cannot provide with QEMU's "host doesn't support requested feature"
// warnings, and keeps the leaves that depend on features consistent:
//
//   - XSAVE (leaf 0xD): the state components follow the features (x87/SSE
//     with xsave, YMM with avx, BNDREGS/BNDCSR with mpx, the three AVX-512
//     ones with avx512f, PKRU with pku, XTILE with amx-tile, arch LBR in
//     XSS with arch-lbr), filtered by what KVM reports; sub-leaves of
//     disabled components are zeroed and the area sizes recomputed (EBX =
//     ECX in sub-leaf 0, as QEMU does under KVM). Without xsave, every
//     sub-leaf of 0xD is zero. OSXSAVE and OSPKE are left to KVM, which
//     derives them from CR4.
//   - SVM: leaf 0x8000000A is zero without svm, and the SVM features
//     (npt, ...) are dropped with QEMU's "depends on other features"
//     warning when requested; the same for intel-pt-lip without intel-pt,
//     and leaf 0x14 and 0x12 are zero without intel-pt and sgx.
//   - LA57 off narrows 0x80000008's linear address width to 48 bits.
//   - On AMD, the CPUID[1].EDX bits AMD repeats in 0x80000001.EDX follow.
//   - qemu64 raises its level for intel-pt (0x14) and sgx (0x12) as
//     QEMU's full-cpuid-auto-level does, and uses QEMU's fixed leaves:
//     zero leaves 2 and 4 (AMD), MWAIT leaf 5, the legacy AMD cache leaves
//     0x80000005/6, 40 physical address bits (-M pc's default).
//
// Feature names are QEMU 7.2's, with its aliases (sse3, pclmuldq, sse4-1,
// sse4-2, xd, ffxsr, i64) and "_" for "-". Names of feature-MSR bits
// (vmx-*, rdctl-no, ...) are accepted and ignored.
//
// Per-vCPU values (APIC IDs, the topology in leaves 1, 4, 0xB, 0x1F and
// 0x80000008.ECX, CmpLegacy) are left to the caller, which applies them on
// top of the table Apply returns.
package cpuid
