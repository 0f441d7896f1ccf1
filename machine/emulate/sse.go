package emulate

import "encoding/binary"

// MXCSR and the x87 state the kernel's kernel_fpu_begin() touches at CPL 0
// (ldmxcsr, stmxcsr, fninit), which KVM's emulator cannot execute on PVM
// hosts.

const (
	cr4OSFXSR = 1 << 9
	// mxcsrReserved are the MXCSR bits no CPU implements (MXCSR_MASK is
	// 0xffff with DAZ on every x86-64 CPU KVM runs on): loading them is #GP.
	mxcsrReserved = 0xffff0000
)

// sseAvailable applies the #UD/#NM rules shared by SSE state instructions.
func (st *state) sseAvailable() error {
	switch {
	case st.sregs.CR0&cr0EM != 0 || st.sregs.CR4&cr4OSFXSR == 0:
		return &fault{vector: vecUD}
	case st.sregs.CR0&cr0TS != 0:
		return &fault{vector: vecNM}
	}
	return nil
}

// ldmxcsr loads MXCSR from a 32-bit memory operand.
func (st *state) ldmxcsr() error {
	if err := st.sseAvailable(); err != nil {
		return err
	}
	la, err := st.operandAddr(st.inst.Args[0])
	if err != nil {
		return err
	}
	v, err := st.readUint(la, 4, accRead)
	if err != nil {
		return err
	}
	if v&mxcsrReserved != 0 {
		return &fault{vector: vecGP, hasCode: true}
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	f.MXCSR = uint32(v)
	st.fpuDirty = true
	st.advance()
	return nil
}

// stmxcsr stores MXCSR to a 32-bit memory operand.
func (st *state) stmxcsr() error {
	if err := st.sseAvailable(); err != nil {
		return err
	}
	la, err := st.operandAddr(st.inst.Args[0])
	if err != nil {
		return err
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	b := binary.LittleEndian.AppendUint32(nil, f.MXCSR)
	if err := st.write(la, b, accWrite); err != nil {
		return err
	}
	st.advance()
	return nil
}

// fninit resets the x87 unit: control word 0x37f (all exceptions masked,
// 64-bit precision, round to nearest), status and tags cleared (all
// registers empty), last-instruction pointers zeroed. It does not check
// for pending exceptions.
func (st *state) fninit() error {
	if st.sregs.CR0&(cr0EM|cr0TS) != 0 {
		return &fault{vector: vecNM}
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	f.FCW, f.FSW, f.FTWX = 0x37f, 0, 0
	f.LastOpcode, f.LastIP, f.LastDP = 0, 0, 0
	st.fpuDirty = true
	st.advance()
	return nil
}
