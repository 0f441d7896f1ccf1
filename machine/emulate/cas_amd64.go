package emulate

import "golang.org/x/sys/cpu"

var haveCAS128 = cpu.X86.HasCX16

// cas128 is lock cmpxchg16b on p: if *p == {old0, old1} it stores
// {new0, new1}; it returns the value *p held and whether it stored.
//
//go:noescape
func cas128(p *[2]uint64, old0, old1, new0, new1 uint64) (cur0, cur1 uint64, swapped bool)
