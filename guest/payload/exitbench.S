/* exitbench: from CPL 3, time-stamped by the host through markers on COM1:
   "pio" then 200000 one-byte writes to port 0x80, "mmio" then 200000
   4-byte writes to unassigned MMIO at 0xd0000000, "done", exit 0x13. Each
   access is one exit to the VMM, so marker-to-marker time over the count is
   the cost of one round trip. */
#include "common.S"
#include "long.S"

	.set COUNT, 200000

	.code64
long_main:
	jmp to_user

user_main:
	lea rsi, [rip + pio_msg]
	call uputs
	mov rcx, COUNT
	mov dx, 0x80
1:	out dx, al
	dec rcx
	jnz 1b
	lea rsi, [rip + mmio_msg]
	call uputs
	mov rcx, COUNT
	mov rdi, 0xd0000000
2:	mov dword ptr [rdi], ecx
	dec rcx
	jnz 2b
	lea rsi, [rip + done_msg]
	call uputs
	mov al, 0x13
	jmp uexit

	.section .rodata
pio_msg:  .asciz "exitbench: pio\n"
mmio_msg: .asciz "exitbench: mmio\n"
done_msg: .asciz "exitbench: done\n"
