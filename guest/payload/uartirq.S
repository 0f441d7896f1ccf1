/* uartirq: drive COM1 by interrupts. A line is sent one byte per THRE
   interrupt; then received bytes are taken by RX interrupts until a newline,
   and echoed back upper-cased. Exit code 0x11 (status 35). Interrupts come
   through the 8259 PIC, IRQ 4 at vector 0x24. It runs in long mode because
   on PVM hosts KVM cannot emulate a 32-bit iret at CPL 0. */
#include "common.S"
#include "long.S"

	.set IER, COM1 + 1
	.set IIR, COM1 + 2
	.set FCR, COM1 + 2
	.set LCR, COM1 + 3
	.set MCR, COM1 + 4
	.set LSR, COM1 + 5

	.code64
long_main:
	/* IDT entry for vector 0x24: 64-bit interrupt gate to irq4. */
	mov eax, offset irq4
	mov word ptr [rip + idt + 0x24*16], ax
	mov word ptr [rip + idt + 0x24*16 + 2], 0x08
	mov word ptr [rip + idt + 0x24*16 + 4], 0x8e00
	shr eax, 16
	mov word ptr [rip + idt + 0x24*16 + 6], ax
	lidt [rip + idt_desc]

	/* 8259: base vectors 0x20/0x28, cascade on IRQ2, 8086 mode. */
	mov al, 0x11
	out 0x20, al
	out 0xa0, al
	mov al, 0x20
	out 0x21, al
	mov al, 0x28
	out 0xa1, al
	mov al, 4
	out 0x21, al
	mov al, 2
	out 0xa1, al
	mov al, 1
	out 0x21, al
	out 0xa1, al
	mov al, 0xef		/* unmask IRQ 4 only */
	out 0x21, al
	mov al, 0xff
	out 0xa1, al

	/* UART: 8N1, FIFOs on and cleared, OUT2, THRE interrupt. */
	mov dx, LCR
	mov al, 3
	out dx, al
	mov dx, FCR
	mov al, 7
	out dx, al
	mov dx, MCR
	mov al, 0x0b
	out dx, al
	mov dx, IER
	mov al, 2
	out dx, al

	/* Wait for the transmit side to finish. */
1:	cli
	cmp byte ptr [rip + tx_done], 0
	jne 2f
	sti
	hlt
	jmp 1b

	/* Receive a line by RX interrupts. */
2:	mov dx, IER
	mov al, 1
	out dx, al
3:	cli
	cmp byte ptr [rip + rx_done], 0
	jne 4f
	sti
	hlt
	jmp 3b

4:	mov esi, offset got
	call puts64
	mov esi, offset rxbuf
	call puts64
	mov al, 0x11
	mov dx, DEBUG_EXIT
	out dx, al
5:	hlt
	jmp 5b

puts64:
	lodsb
	test al, al
	jz 6f
	call uputc
	jmp puts64
6:	ret

/* The IRQ 4 handler: service every pending UART interrupt, then EOI. */
irq4:
	push rax
	push rbx
	push rdx
10:	mov dx, IIR
	in al, dx
	test al, 1
	jnz 19f			/* no interrupt pending */
	and al, 0x0e
	cmp al, 0x02
	je 11f
	cmp al, 0x04
	je 14f
	cmp al, 0x0c
	je 14f
	cmp al, 0x06
	jne 13f
	mov dx, LSR		/* line status: read LSR to clear */
	in al, dx
	jmp 10b
13:	mov dx, COM1 + 6	/* modem status: read MSR to clear */
	in al, dx
	jmp 10b

11:	/* THRE: send the next byte, or stop THRE interrupts. */
	mov ebx, [rip + txpos]
	lea rdx, [rip + txmsg]
	movzx eax, byte ptr [rdx + rbx]
	test al, al
	jz 12f
	inc dword ptr [rip + txpos]
	mov dx, COM1
	out dx, al
	jmp 10b
12:	mov byte ptr [rip + tx_done], 1
	mov dx, IER
	xor al, al
	out dx, al
	jmp 10b

14:	/* RX data: store upper-cased until a newline. */
	mov dx, COM1
	in al, dx
	cmp al, 'a'
	jb 15f
	cmp al, 'z'
	ja 15f
	sub al, 0x20
15:	mov ebx, [rip + rxpos]
	cmp ebx, 62
	jae 16f
	lea rdx, [rip + rxbuf]
	mov [rdx + rbx], al
	inc dword ptr [rip + rxpos]
16:	cmp al, '\n'
	jne 10b
	mov byte ptr [rip + rx_done], 1
	mov dx, IER
	xor al, al
	out dx, al
	jmp 10b

19:	mov al, 0x20		/* EOI to the master PIC */
	out 0x20, al
	pop rdx
	pop rbx
	pop rax
	iretq

user_main:
	ud2

	.section .rodata
txmsg:	.asciz "uart irq: transmit by THRE interrupts ok\n"
got:	.asciz "uart irq: received "

	.data
	.align 8
idt_desc:
	.word 256*16 - 1
	.long idt, 0
txpos:	.long 0
rxpos:	.long 0
tx_done: .byte 0
rx_done: .byte 0
rxbuf:	.space 64

	.bss
	.align 16
idt:	.space 256*16
