/* virtio / virtiobench payloads: long.S's long mode and CPL 3 switch, then
   the 64-bit C driver (main.c, virtio.c, rt.c, start.S), linked at 0x200000
   and included here as a flat binary, BLOB_BIN; BLOB_INC defines its .bss
   size. See main.c for what it checks, exit codes in rt.h. */
#include "../common.S"
#include "../long.S"

	.code64
long_main:
	jmp to_user

user_main:
	mov eax, offset cblob
	jmp rax

#include BLOB_INC

	.section .cblob, "awx"
	.globl cblob
cblob:
	.incbin BLOB_BIN

	.section .cbss, "aw", @nobits
	.space CBLOB_BSS_SIZE
