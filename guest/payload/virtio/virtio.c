#include "virtio.h"

/* --- PCI configuration mechanism #1 --------------------------------------
   Only 32-bit accesses at 0xcfc: every host bridge supports them, and a
   write to the command dword with the status half zero leaves the status
   register's write-1-to-clear bits alone. */

static uint32_t cfg_read32(uint8_t devfn, uint8_t off)
{
	outl(0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (off & 0xfc));
	return inl(0xcfc);
}

static void cfg_write32(uint8_t devfn, uint8_t off, uint32_t v)
{
	outl(0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (off & 0xfc));
	outl(0xcfc, v);
}

static uint8_t cfg_read8(uint8_t devfn, uint8_t off)
{
	return (uint8_t)(cfg_read32(devfn, off) >> ((off & 3) * 8));
}

#define PCI_COMMAND 0x04
#define PCI_CMD_MEM 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_CAPS 0x0010
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CAP_VENDOR 0x09

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4

/* next_fn walks bus 0's functions: function 0 of each device, and 1..7
   only behind a multi-function header. Returns -1 at the end. */
static int next_fn(int devfn)
{
	for (devfn++; devfn < 256; devfn++) {
		if ((devfn & 7) != 0 && !(cfg_read8(devfn & ~7, PCI_HEADER_TYPE) & 0x80)) {
			devfn |= 7;
			continue;
		}
		if ((cfg_read32(devfn, 0) & 0xffff) != 0xffff)
			return devfn;
	}
	return -1;
}

static const char *type_name(uint16_t id)
{
	switch (id) {
	case VIRTIO_ID_BLK: case 0x1001: return "blk";
	case VIRTIO_ID_RNG: case 0x1005: return "rng";
	case VIRTIO_ID_CONSOLE: case 0x1003: return "console";
	case 0x1041: case 0x1000: return "net";
	}
	return "other";
}

void pci_list(void)
{
	for (int fn = next_fn(-1); fn >= 0; fn = next_fn(fn)) {
		uint32_t id = cfg_read32(fn, 0);
		if ((id & 0xffff) != VIRTIO_VENDOR)
			continue;
		uint16_t dev = id >> 16;
		print("virtio: pci %b 1af4:%x %s%s\n", (uint64_t)fn, (uint64_t)dev,
		      type_name(dev), dev < 0x1040 ? " (transitional)" : "");
	}
}

/* bar_base returns the memory address BAR bar decodes, or fails the run. */
static uint64_t bar_base(struct vdev *d, uint8_t bar)
{
	if (bar > 5)
		fail(EXIT_PCI, "%s: capability names BAR %u", d->name, (uint64_t)bar);
	uint8_t off = PCI_BAR0 + 4 * bar;
	uint32_t lo = cfg_read32(d->devfn, off);
	if (lo & 1)
		fail(EXIT_PCI, "%s: BAR %u is an I/O BAR", d->name, (uint64_t)bar);
	uint64_t addr = lo & ~0xfu;
	if (((lo >> 1) & 3) == 2) {
		if (bar == 5)
			fail(EXIT_PCI, "%s: 64-bit BAR 5", d->name);
		addr |= (uint64_t)cfg_read32(d->devfn, off + 4) << 32;
	}
	if (addr == 0)
		fail(EXIT_PCI, "%s: BAR %u is not assigned", d->name, (uint64_t)bar);
	return addr;
}

static uintptr_t map_cap(struct vdev *d, uint8_t cap, const char *what)
{
	uint8_t bar = cfg_read8(d->devfn, cap + 4);
	uint32_t off = cfg_read32(d->devfn, cap + 8);
	uint32_t len = cfg_read32(d->devfn, cap + 12);
	uint64_t a = bar_base(d, bar) + off;
	/* long.S identity-maps only the first 4 GiB. */
	if (a + len > (1ull << 32) || a + len < a)
		fail(EXIT_PCI, "%s: %s region at 0x%x+0x%x is above 4 GiB", d->name, what, a, (uint64_t)len);
	return (uintptr_t)a;
}

/* transitional maps a modern device ID to the transitional one (0x1000
   range) of the same type. Transitional devices that are virtio 1.x
   capable carry the same modern capabilities, so QEMU's default
   virtio-*-pci (without disable-legacy=on) works too. */
static uint16_t transitional(uint16_t id)
{
	switch (id) {
	case VIRTIO_ID_BLK: return 0x1001;
	case VIRTIO_ID_CONSOLE: return 0x1003;
	case VIRTIO_ID_RNG: return 0x1005;
	}
	return 0;
}

int vdev_find(struct vdev *d, uint16_t device_id, const char *name)
{
	int fn;
	for (fn = next_fn(-1); fn >= 0; fn = next_fn(fn)) {
		uint32_t id = cfg_read32(fn, 0);
		if ((id & 0xffff) == VIRTIO_VENDOR &&
		    (id >> 16 == device_id || id >> 16 == transitional(device_id)))
			break;
	}
	if (fn < 0)
		return 0;
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->devfn = (uint8_t)fn;
	d->device_id = device_id;

	uint32_t cmd = cfg_read32(fn, PCI_COMMAND);
	if (!((cmd >> 16) & PCI_STATUS_CAPS))
		fail(EXIT_PCI, "%s: no capability list", name);
	/* Polling only: no INTx; MSI-X stays disabled in its capability. */
	cfg_write32(fn, PCI_COMMAND, (cmd & 0xffff) | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE);

	/* The first capability of each type wins, as the spec asks. */
	uint8_t common = 0, notify = 0, isr = 0, device = 0;
	uint8_t cap = cfg_read8(fn, PCI_CAP_PTR) & 0xfc;
	for (int guard = 0; cap >= 0x40 && guard < 48; guard++) {
		uint8_t id = cfg_read8(fn, cap);
		if (id == PCI_CAP_VENDOR) {
			uint8_t type = cfg_read8(fn, cap + 3);
			uint8_t len = cfg_read8(fn, cap + 2);
			if (type == VIRTIO_PCI_CAP_COMMON && !common)
				common = cap;
			else if (type == VIRTIO_PCI_CAP_NOTIFY && !notify && len >= 20)
				notify = cap;
			else if (type == VIRTIO_PCI_CAP_ISR && !isr)
				isr = cap;
			else if (type == VIRTIO_PCI_CAP_DEVICE && !device)
				device = cap;
		}
		cap = cfg_read8(fn, cap + 1) & 0xfc;
	}
	if (!common || !notify || !isr)
		fail(EXIT_PCI, "%s: missing virtio capability (common %x notify %x isr %x)", name,
		     (uint64_t)common, (uint64_t)notify, (uint64_t)isr);
	d->common = map_cap(d, common, "common");
	d->notify = map_cap(d, notify, "notify");
	d->notify_mult = cfg_read32(fn, notify + 16);
	d->isr = map_cap(d, isr, "isr");
	if (device)
		d->devcfg = map_cap(d, device, "device");
	print("virtio: %s at %b common=0x%x notify=0x%x mult=%u\n", name, (uint64_t)fn,
	      (uint64_t)d->common, (uint64_t)d->notify, (uint64_t)d->notify_mult);
	return 1;
}

/* --- virtio_pci_common_cfg ---------------------------------------------- */

#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX 0x10
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_CFGGEN 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF 0x1e
#define CC_Q_DESCLO 0x20
#define CC_Q_DESCHI 0x24
#define CC_Q_AVAILLO 0x28
#define CC_Q_AVAILHI 0x2c
#define CC_Q_USEDLO 0x30
#define CC_Q_USEDHI 0x34

#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80

#define NO_VECTOR 0xffff

static void set_status(struct vdev *d, uint8_t s)
{
	mmio_w8(d->common + CC_STATUS, s);
}

void vdev_init(struct vdev *d, uint64_t wanted)
{
	uintptr_t c = d->common;
	set_status(d, 0);
	for (long i = 0; mmio_r8(c + CC_STATUS) != 0; i++)
		if (i > 1000000)
			fail(EXIT_FEATURES, "%s: reset does not complete", d->name);
	set_status(d, S_ACKNOWLEDGE);
	set_status(d, S_ACKNOWLEDGE | S_DRIVER);

	mmio_w32(c + CC_DFSELECT, 0);
	uint64_t lo = mmio_r32(c + CC_DF);
	mmio_w32(c + CC_DFSELECT, 1);
	uint64_t hi = mmio_r32(c + CC_DF);
	d->offered = hi << 32 | lo;
	if (!(d->offered & VIRTIO_F_VERSION_1)) {
		set_status(d, S_FAILED);
		fail(EXIT_FEATURES, "%s: VERSION_1 not offered (features 0x%x)", d->name, d->offered);
	}
	d->features = d->offered & (wanted | VIRTIO_F_VERSION_1);
	mmio_w32(c + CC_GFSELECT, 0);
	mmio_w32(c + CC_GF, (uint32_t)d->features);
	mmio_w32(c + CC_GFSELECT, 1);
	mmio_w32(c + CC_GF, (uint32_t)(d->features >> 32));
	set_status(d, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(mmio_r8(c + CC_STATUS) & S_FEATURES_OK)) {
		set_status(d, S_FAILED);
		fail(EXIT_FEATURES, "%s: device refused features 0x%x", d->name, d->features);
	}
	mmio_w16(c + CC_MSIX, NO_VECTOR);
	print("virtio: %s features offered=0x%x negotiated=0x%x queues=%u\n", d->name, d->offered,
	      d->features, (uint64_t)mmio_r16(c + CC_NUMQ));
}

void vq_setup(struct vdev *d, struct vq *q, uint16_t index, void *ringpage)
{
	uintptr_t c = d->common;
	mmio_w16(c + CC_Q_SELECT, index);
	uint16_t max = mmio_r16(c + CC_Q_SIZE);
	if (max == 0)
		fail(EXIT_QUEUE, "%s: queue %u does not exist", d->name, (uint64_t)index);
	if (mmio_r16(c + CC_Q_ENABLE))
		fail(EXIT_QUEUE, "%s: queue %u enabled after reset", d->name, (uint64_t)index);
	uint16_t size = max < VQ_MAX ? max : VQ_MAX;
	/* A split ring's size must be a power of two. */
	while (size & (size - 1))
		size &= size - 1;

	/* One page: descriptors at 0 (16*64), avail at 1024 (6+2*64),
	   used at 2048 (6+8*64); all well past the 16/2/4 alignment. */
	uint8_t *p = ringpage;
	memset(p, 0, 4096);
	memset(q, 0, sizeof(*q));
	q->dev = d;
	q->index = index;
	q->size = size;
	q->desc = (struct vring_desc *)p;
	q->avail = (volatile uint16_t *)(p + 1024);
	q->used = p + 2048;
	/* We poll, so ask the device not to interrupt. */
	q->avail[0] = 1; /* VRING_AVAIL_F_NO_INTERRUPT */

	mmio_w16(c + CC_Q_SIZE, size);
	mmio_w16(c + CC_Q_MSIX, NO_VECTOR);
	mmio_w32(c + CC_Q_DESCLO, (uint32_t)(uintptr_t)q->desc);
	mmio_w32(c + CC_Q_DESCHI, 0);
	mmio_w32(c + CC_Q_AVAILLO, (uint32_t)(uintptr_t)q->avail);
	mmio_w32(c + CC_Q_AVAILHI, 0);
	mmio_w32(c + CC_Q_USEDLO, (uint32_t)(uintptr_t)q->used);
	mmio_w32(c + CC_Q_USEDHI, 0);
	uint16_t noff = mmio_r16(c + CC_Q_NOFF);
	q->notify_addr = d->notify + (uintptr_t)noff * d->notify_mult;
	mmio_w16(c + CC_Q_ENABLE, 1);
	if (mmio_r16(c + CC_Q_ENABLE) != 1)
		fail(EXIT_QUEUE, "%s: queue %u does not enable", d->name, (uint64_t)index);
	print("virtio: %s queue %u size=%u (max %u) notify=0x%x\n", d->name, (uint64_t)index,
	      (uint64_t)size, (uint64_t)max, (uint64_t)q->notify_addr);
}

void vdev_ready(struct vdev *d)
{
	set_status(d, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	uint8_t s = mmio_r8(d->common + CC_STATUS);
	if (s & (S_NEEDS_RESET | S_FAILED) || !(s & S_DRIVER_OK))
		fail(EXIT_QUEUE, "%s: status 0x%x after DRIVER_OK", d->name, (uint64_t)s);
}

/* --- split virtqueue ---------------------------------------------------- */

void vq_publish(struct vq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
	barrier(); /* ring entry (and the descriptors before it) before idx */
	q->avail[1] = q->avail_idx;
}

void vq_kick(struct vq *q)
{
	mb();
	mmio_w16(q->notify_addr, q->index);
}

uint16_t vq_wait(struct vq *q, uint32_t *len)
{
	volatile uint16_t *used_idx = (volatile uint16_t *)(q->used + 2);
	/* ~2^31 pause iterations: tens of seconds on any machine. */
	for (uint64_t spins = 0; *used_idx == q->last_used; spins++) {
		if (spins > (1ull << 31)) {
			uint8_t s = mmio_r8(q->dev->common + CC_STATUS);
			fail(EXIT_IO, "%s: queue %u: no completion (avail %u used %u status 0x%x)",
			     q->dev->name, (uint64_t)q->index, (uint64_t)q->avail_idx,
			     (uint64_t)*used_idx, (uint64_t)s);
		}
		cpu_relax();
	}
	barrier(); /* idx before the entry it covers */
	volatile uint32_t *e = (volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
	uint32_t id = e[0];
	*len = e[1];
	q->last_used++;
	if (id >= q->size)
		fail(EXIT_IO, "%s: used id %u out of range", q->dev->name, (uint64_t)id);
	return (uint16_t)id;
}
