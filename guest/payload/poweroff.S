/* poweroff: print a line, then power off through ACPI: SLP_TYP=S5 (0 on
   QEMU's PIIX4 and govmm's PM block) with SLP_EN in PM1a_CNT at port 0x604
   (PM base 0x600, where SeaBIOS puts it on QEMU's pc and govmm has it).
   The VMM reports SHUTDOWN with reason guest-shutdown and exits 0. */
#include "common.S"

main32:
	mov esi, offset msg
	call puts
	mov dx, 0x604
	mov ax, 0x2000		/* SLP_EN | SLP_TYP 0 */
	out dx, ax
1:	hlt
	jmp 1b

	.section .rodata
msg:	.asciz "poweroff: powering off through ACPI\n"
