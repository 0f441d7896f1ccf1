/* cpl3: enter long mode and run a 10-million-step xorshift64 at CPL 3,
   print the result, exit with 0x12 (status 37). The result is fixed, so a
   VMM that loses or corrupts guest state is caught. */
#include "common.S"
#include "long.S"

	.code64
long_main:
	jmp to_user

user_main:
	lea rsi, [rip + start_msg]
	call uputs
	mov rax, 0x9e3779b97f4a7c15
	mov rcx, 10000000
1:	mov rdx, rax
	shl rdx, 13
	xor rax, rdx
	mov rdx, rax
	shr rdx, 7
	xor rax, rdx
	mov rdx, rax
	shl rdx, 17
	xor rax, rdx
	dec rcx
	jnz 1b
	push rax
	lea rsi, [rip + res_msg]
	call uputs
	pop rax
	call uputhex
	mov al, '\n'
	call uputc
	mov al, 0x12
	jmp uexit

	.section .rodata
start_msg: .asciz "cpl3: running at CPL 3\n"
res_msg:   .asciz "cpl3: xorshift64 = "
