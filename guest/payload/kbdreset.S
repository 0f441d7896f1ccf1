/* kbdreset: print a line, then pulse the reset line through the i8042
   keyboard controller (command 0xFE on port 0x64), as Linux's reboot=k. */
#include "common.S"

main32:
	mov esi, offset msg
	call puts
	mov al, 0xfe
	out 0x64, al
1:	hlt
	jmp 1b

	.section .rodata
msg:	.asciz "kbdreset: booted\n"
