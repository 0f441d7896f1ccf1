#include "textflag.h"

// func cas128(p *[2]uint64, old0, old1, new0, new1 uint64) (cur0, cur1 uint64, swapped bool)
TEXT ·cas128(SB), NOSPLIT, $0-57
	MOVQ p+0(FP), DI
	MOVQ old0+8(FP), AX
	MOVQ old1+16(FP), DX
	MOVQ new0+24(FP), BX
	MOVQ new1+32(FP), CX
	LOCK
	CMPXCHG16B (DI)
	SETEQ swapped+56(FP)
	MOVQ AX, cur0+40(FP)
	MOVQ DX, cur1+48(FP)
	RET
