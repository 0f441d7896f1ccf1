/* Entry of the C part, linked at 0x200000 (blob.ld) and jumped to at CPL 3
   by virtio.S's user_main: own stack, zeroed .bss, then cmain. */
	.intel_syntax noprefix
	.section .text.start, "ax"
	.globl _cstart
_cstart:
	lea rdi, [rip + __bss_start]
	lea rcx, [rip + __bss_end]
	sub rcx, rdi
	xor eax, eax
	rep stosb
	lea rsp, [rip + cstack_top]
	call cmain
1:	pause
	jmp 1b

	.bss
	.align 16
	.space 65536
cstack_top:
