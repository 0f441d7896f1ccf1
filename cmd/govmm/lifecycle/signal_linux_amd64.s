#include "textflag.h"

// Signal handler, called by the kernel with DI = signo, SI = *siginfo,
// DX = *ucontext, on the thread's alternate stack. It only does
// write(sigPipeFD, siginfo, 128) and returns into sigRestorer. It touches
// no Go state, so it is safe on any thread at any moment.
TEXT ·sigHandler(SB),NOSPLIT|NOFRAME,$0
	MOVQ ·sigPipeFD(SB), DI
	MOVQ $128, DX
	MOVQ $1, AX // SYS_write
	SYSCALL
	RET

TEXT ·sigRestorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ $15, AX // SYS_rt_sigreturn
	SYSCALL
	INT $3

DATA ·sigHandlerAddr+0(SB)/8, $·sigHandler(SB)
GLOBL ·sigHandlerAddr(SB), NOPTR, $8
DATA ·sigRestorerAddr+0(SB)/8, $·sigRestorer(SB)
GLOBL ·sigRestorerAddr(SB), NOPTR, $8
