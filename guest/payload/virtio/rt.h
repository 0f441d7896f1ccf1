/* Runtime for the virtio payload driver: port I/O, MMIO, COM1 output and
   isa-debug-exit. Everything here runs at CPL 3 (long.S gives user code an
   I/O bitmap allowing every port and user-accessible identity-mapped pages
   for the first 4 GiB), where a PVM host runs guest code natively. */
#ifndef RT_H
#define RT_H

#include <stdint.h>
#include <stddef.h>

#define COM1 0x3f8
#define DEBUG_EXIT 0x501

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* MMIO through volatile pointers: gcc emits one plain mov per access, which
   every VMM's instruction decoder handles. Wider fields are split into
   32-bit accesses, as the virtio spec allows for the common config. */
static inline uint8_t mmio_r8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_r16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_r32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_w8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_w16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_w32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

/* x86 keeps stores ordered and loads ordered, so a compiler barrier is all
   the split ring needs between filling a buffer and publishing it; mb() is
   a full fence before a notification, to be safe against store buffering. */
#define barrier() __asm__ volatile("" : : : "memory")
static inline void mb(void) { __asm__ volatile("mfence" : : : "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" : : : "memory"); }

void putc(char c);
void puts(const char *s);
/* print: a tiny printf with %s, %u (uint64_t), %x (uint64_t), %c, %b (a
   PCI address as bus:dev.fn from a uint64_t dev*8+fn). Integer arguments
   must be passed as uint64_t. */
void print(const char *fmt, ...);
__attribute__((noreturn)) void exit_qemu(uint8_t code);
__attribute__((noreturn)) void fail(uint8_t code, const char *fmt, ...);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Exit codes written to isa-debug-exit; the VMM exits with (code<<1)|1. */
enum {
	EXIT_OK = 0x20,        /* every check passed: status 65 */
	EXIT_NO_BLK = 0x21,    /* no virtio-blk (1af4:1042) on bus 0 */
	EXIT_NO_RNG = 0x22,    /* blk checks passed, no virtio-rng (1af4:1044) */
	EXIT_PCI = 0x23,       /* capability missing, BAR unassigned, I/O or above 4 GiB */
	EXIT_FEATURES = 0x24,  /* VERSION_1 not offered or FEATURES_OK refused */
	EXIT_QUEUE = 0x25,     /* queue 0 missing or unusable */
	EXIT_IO = 0x26,        /* request status not OK, or no completion in time */
	EXIT_DATA = 0x27,      /* data read back differs from data written */
	EXIT_RNG = 0x28,       /* virtio-rng returned nothing or only zeros */
	EXIT_DISK = 0x29,      /* disk too small or read-only */
};

#endif
