/* Shared by every payload: the boot headers, a flat 32-bit GDT, and polled
   COM1 output. Each payload defines main32 (entered in 32-bit protected mode
   with a stack and flat segments) and includes this file. */
	.intel_syntax noprefix

	.set COM1, 0x3f8
	.set DEBUG_EXIT, 0x501

	.section .multiboot, "a"
	.align 4
	.long 0x1badb002		/* magic */
	.long 0x00000000		/* flags: none, load as ELF */
	.long -0x1badb002		/* checksum */

	.section .note.pvh, "a", @note
	.align 4
	.long 4				/* namesz */
	.long 4				/* descsz */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long _start

	.text
	.code32
	.globl _start
_start:
	cli
	lgdt [gdt_desc]
	ljmp 0x10, offset 1f
1:	mov ax, 0x18
	mov ds, ax
	mov es, ax
	mov fs, ax
	mov gs, ax
	mov ss, ax
	mov esp, offset stack_top
	jmp main32

/* putc: write al to COM1, polling LSR.THRE. Clobbers edx. */
putc:
	push eax
	mov dx, COM1 + 5
2:	in al, dx
	test al, 0x20
	jz 2b
	pop eax
	mov dx, COM1
	out dx, al
	ret

/* puts: write the NUL-terminated string at esi. Clobbers eax, edx, esi. */
puts:
	lodsb
	test al, al
	jz 3f
	call putc
	jmp puts
3:	ret

/* exit: write al to isa-debug-exit; the VMM exits with (al<<1)|1. */
exit:
	mov dx, DEBUG_EXIT
	out dx, al
4:	hlt
	jmp 4b

	.section .rodata
	.align 8
gdt:
	.quad 0
	.quad 0x00af9b000000ffff	/* 0x08: 64-bit code, DPL 0 */
	.quad 0x00cf9b000000ffff	/* 0x10: 32-bit code, DPL 0 */
	.quad 0x00cf93000000ffff	/* 0x18: data, DPL 0 */
	.quad 0x00affb000000ffff	/* 0x20: 64-bit code, DPL 3 */
	.quad 0x00cff3000000ffff	/* 0x28: data, DPL 3 */
gdt_tss:				/* 0x30: 64-bit TSS, base patched by long.S */
	.quad 0x0000890000002068
	.quad 0
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.bss
	.align 16
	.space 4096
stack_top:
	.text
