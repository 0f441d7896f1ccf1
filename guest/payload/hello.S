/* hello: print a line on COM1 and exit through isa-debug-exit with 0x21
   (the VMM exits with status 67). */
#include "common.S"

main32:
	mov esi, offset msg
	call puts
	mov al, 0x21
	jmp exit

	.section .rodata
msg:	.asciz "Hello from a govmm payload guest!\n"
