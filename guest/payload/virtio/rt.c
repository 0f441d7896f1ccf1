#include "rt.h"

void putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void putnum(uint64_t v, unsigned base, int width)
{
	char buf[24];
	int n = 0;
	do {
		unsigned d = v % base;
		buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (n < width)
		buf[n++] = '0';
	while (n)
		putc(buf[--n]);
}

static void vprint(const char *fmt, __builtin_va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc(*fmt);
			continue;
		}
		switch (*++fmt) {
		case 's':
			puts(__builtin_va_arg(ap, const char *));
			break;
		case 'u':
			putnum(__builtin_va_arg(ap, uint64_t), 10, 1);
			break;
		case 'x':
			putnum(__builtin_va_arg(ap, uint64_t), 16, 1);
			break;
		case 'c':
			putc((char)__builtin_va_arg(ap, int));
			break;
		case 'b': {
			uint64_t bdf = __builtin_va_arg(ap, uint64_t);
			putnum(0, 16, 2);
			putc(':');
			putnum(bdf >> 3, 16, 2);
			putc('.');
			putnum(bdf & 7, 16, 1);
			break;
		}
		case '%':
			putc('%');
			break;
		default:
			return;
		}
	}
}

void print(const char *fmt, ...)
{
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	vprint(fmt, ap);
	__builtin_va_end(ap);
}

void exit_qemu(uint8_t code)
{
	outb(DEBUG_EXIT, code);
	for (;;)
		cpu_relax();
}

void fail(uint8_t code, const char *fmt, ...)
{
	__builtin_va_list ap;
	puts("virtio: FAIL: ");
	__builtin_va_start(ap, fmt);
	vprint(fmt, ap);
	__builtin_va_end(ap);
	putc('\n');
	exit_qemu(code);
}

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p < *q ? -1 : 1;
	return 0;
}
