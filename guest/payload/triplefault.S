/* triplefault: print a line, then fault with no usable IDT: #UD cannot be
   delivered, nor the #DF after it, so the CPU shuts down (a triple fault).
   QEMU treats that as a guest reset: with -no-reboot the VMM exits 0,
   otherwise the guest boots again. */
#include "common.S"

main32:
	mov esi, offset msg
	call puts
	lidt [null_idt]
	ud2

	.section .rodata
msg:	.asciz "triplefault: booted\n"
	.align 8
null_idt:
	.word 0
	.long 0
