/* Included after common.S by payloads that run in 64-bit mode: identity-map
   4 GiB with user-accessible 2 MiB pages, enter long mode and jump to
   long_main (64-bit, CPL 0, a stack, flat segments). to_user then iretqs to
   user_main at CPL 3 with IOPL 3, so user code may use in/out. On these
   machines CPL-3 code runs natively while CPL-0 code is emulated, so payloads
   that do real work leave ring 0 as soon as they can. */

main32:
	/* PML4[0] -> PDPT; PDPT[0..3] -> PD[0..3]; PD entries map 2 MiB each. */
	mov dword ptr [pml4], offset pdpt + 7
	mov edi, offset pdpt
	mov eax, offset pd + 7
	mov ecx, 4
1:	mov [edi], eax
	add edi, 8
	add eax, 4096
	loop 1b
	mov edi, offset pd
	mov eax, 0x87		/* present, writable, user, 2 MiB */
	mov ecx, 2048
2:	mov [edi], eax
	mov dword ptr [edi + 4], 0
	add edi, 8
	add eax, 0x200000
	loop 2b

	mov eax, cr4
	or eax, 1 << 5		/* PAE */
	mov cr4, eax
	mov eax, offset pml4
	mov cr3, eax
	mov ecx, 0xc0000080	/* EFER */
	rdmsr
	or eax, 1 << 8		/* LME */
	wrmsr
	mov eax, cr0
	or eax, 1 << 31		/* PG */
	mov cr0, eax
	ljmp 0x08, offset long_entry

	.code64
long_entry:
	mov ax, 0x18
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov esp, offset stack_top
	/* Point the TSS descriptor at tss and load TR. */
	mov eax, offset tss
	mov word ptr [rip + gdt_tss + 2], ax
	shr eax, 16
	mov byte ptr [rip + gdt_tss + 4], al
	mov byte ptr [rip + gdt_tss + 7], ah
	mov eax, offset stack_top
	mov dword ptr [rip + tss + 4], eax	/* RSP0 for interrupts from CPL 3 */
	mov ax, 0x30
	ltr ax
	jmp long_main

/* to_user: leave ring 0 for user_main. User code reaches the UART through
   the TSS I/O permission bitmap (all ports allowed): IOPL 3 alone is not
   enough, because PVM hosts do not keep a guest's IOPL across iretq. */
to_user:
	/* iretq frame: SS, RSP, RFLAGS (IOPL 3, IF 0), CS, RIP. */
	push 0x2b
	mov eax, offset user_stack_top	/* 32-bit absolute: this is an ELF32 file */
	push rax
	push 0x3002
	push 0x23
	mov eax, offset user_main
	push rax
	iretq

/* uputc: al to COM1 from CPL 3 (IOPL 3), polling. Clobbers dx. */
uputc:
	push rax
	mov dx, COM1 + 5
3:	in al, dx
	test al, 0x20
	jz 3b
	pop rax
	mov dx, COM1
	out dx, al
	ret

/* uputs: NUL-terminated string at rsi. */
uputs:
	lodsb
	test al, al
	jz 4f
	call uputc
	jmp uputs
4:	ret

/* uputhex: rax as 16 hex digits. */
uputhex:
	mov rcx, 16
5:	rol rax, 4
	push rax
	and al, 0xf
	add al, '0'
	cmp al, '9'
	jbe 6f
	add al, 'a' - '0' - 10
6:	call uputc
	pop rax
	loop 5b
	ret

/* uexit: al to isa-debug-exit. */
uexit:
	mov dx, DEBUG_EXIT
	out dx, al
7:	jmp 7b

	.data
	.align 16
tss:	.space 102
	.word 104			/* I/O map base: right after the TSS */
	.space 8192			/* I/O permission bitmap: every port allowed */
	.byte 0xff

	.bss
	.align 4096
pml4:	.space 4096
pdpt:	.space 4096
pd:	.space 4 * 4096
	.space 8192
user_stack_top:
	.text
