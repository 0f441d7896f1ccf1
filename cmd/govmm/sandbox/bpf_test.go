//go:build linux && amd64

package sandbox

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// seccompData is the kernel's struct seccomp_data, the input of a filter.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// runBPF interprets a classic BPF program over d with the restrictions the
// kernel's seccomp checker imposes (aligned 32-bit loads inside
// seccomp_data, forward jumps only, must end in a return), so a program it
// accepts is one the kernel accepts too, as far as these opcodes go.
func runBPF(prog []unix.SockFilter, d seccompData) (uint32, error) {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return 0, fmt.Errorf("bad length %d", len(prog))
	}
	mem := d.bytes()
	var acc, x uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K+4 > uint32(len(mem)) {
				return 0, fmt.Errorf("pc %d: bad load offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(mem[in.K:])
		case unix.BPF_LDX | unix.BPF_W | unix.BPF_IMM:
			x = in.K
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_ALU | unix.BPF_OR | unix.BPF_K:
			acc |= in.K
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_X:
			acc &= x
		case unix.BPF_RET | unix.BPF_K:
			return in.K, nil
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var ok bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				ok = acc == in.K
			case unix.BPF_JGT:
				ok = acc > in.K
			case unix.BPF_JGE:
				ok = acc >= in.K
			case unix.BPF_JSET:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			return 0, fmt.Errorf("pc %d: unsupported opcode %#x", pc, in.Code)
		}
		if pc+1 >= len(prog) {
			return 0, fmt.Errorf("pc %d: runs off the end", pc)
		}
	}
	return 0, fmt.Errorf("no return")
}
