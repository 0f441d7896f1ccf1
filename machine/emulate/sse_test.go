package emulate

import "testing"

func TestLdmxcsrStmxcsr(t *testing.T) {
	m := newMachine(t)
	m.cpu.sregs.CR4 |= cr4OSFXSR
	m.cpu.regs.RSP = 0x30000
	le.PutUint32(m.ram[0x30004:], 0x1fbf)
	m.mustRun(t, 0x0f, 0xae, 0x54, 0x24, 0x04) // ldmxcsr [rsp+4], as kernel_fpu_begin
	if m.cpu.fpu.MXCSR != 0x1fbf {
		t.Errorf("MXCSR = %#x, want 0x1fbf", m.cpu.fpu.MXCSR)
	}
	m.wantRIP(t, codeAddr+5)

	m.cpu.regs.RBX = 0x30100
	m.mustRun(t, 0x0f, 0xae, 0x1b) // stmxcsr [rbx]
	if v := le.Uint32(m.ram[0x30100:]); v != 0x1fbf {
		t.Errorf("stored MXCSR %#x", v)
	}
	if c := m.em.Counts(); c["ldmxcsr"] != 1 || c["stmxcsr"] != 1 {
		t.Errorf("Counts = %v", c)
	}

	// Reserved bits: #GP(0), MXCSR and RIP unchanged.
	rip := m.cpu.regs.RIP
	le.PutUint32(m.ram[0x30004:], 0x10000)
	m.mustRun(t, 0x0f, 0xae, 0x54, 0x24, 0x04)
	m.wantException(t, vecGP, 0)
	if m.cpu.fpu.MXCSR != 0x1fbf || m.cpu.regs.RIP != rip {
		t.Errorf("after #GP: MXCSR %#x RIP %#x", m.cpu.fpu.MXCSR, m.cpu.regs.RIP)
	}
}

func TestLdmxcsrNeedsOSFXSR(t *testing.T) {
	m := newMachine(t)
	m.cpu.sregs.CR4 &^= cr4OSFXSR
	m.cpu.regs.RSP = 0x30000
	m.mustRun(t, 0x0f, 0xae, 0x54, 0x24, 0x04)
	m.wantException(t, vecUD, 0)
}

func TestFninit(t *testing.T) {
	m := newMachine(t)
	f := &m.cpu.fpu
	f.FCW, f.FSW, f.FTWX, f.LastIP = 0x7f, 0xffff, 0xff, 0x1234
	m.mustRun(t, 0xdb, 0xe3) // fninit
	if f.FCW != 0x37f || f.FSW != 0 || f.FTWX != 0 || f.LastIP != 0 {
		t.Errorf("after fninit: FCW %#x FSW %#x FTWX %#x LastIP %#x", f.FCW, f.FSW, f.FTWX, f.LastIP)
	}
	m.wantRIP(t, codeAddr+2)
	m.cpu.sregs.CR0 |= cr0TS
	m.mustRun(t, 0xdb, 0xe3)
	m.wantException(t, vecNM, 0)
}
