/* The virtio payload's driver, entered at CPL 3 from start.S.

   virtio.elf (BENCH=0) checks a virtio-blk and a virtio-rng device and
   exits with EXIT_OK (0x20, status 65), or prints the reason and exits with
   one of the other codes in rt.h.

   Disk pattern, for a host to recompute: byte i (0..511) of sector s
   (absolute sector number) is

       (s*31 + i*7 + 0x5a) & 0xff

   virtio.elf writes sectors 0..255 and the last 8 sectors of the disk
   (capacity-8 .. capacity-1) with it and leaves every other sector alone.
   virtiobench.elf writes the same pattern over the first min(capacity,
   64 MiB) of the disk, rounded down to whole MiB. */
#include "virtio.h"

#define SEED 0x5a
#define HEAD_SECTORS 256
#define TAIL_SECTORS 8

#ifndef BENCH
#define BENCH 0
#endif

/* virtio-blk */
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0

static uint8_t pattern(uint64_t s, uint32_t i)
{
	return (uint8_t)(s * 31 + i * 7 + SEED);
}

static void fill(uint8_t *buf, uint64_t sector, uint32_t nsect)
{
	for (uint32_t k = 0; k < nsect; k++)
		for (uint32_t i = 0; i < 512; i++)
			buf[k * 512 + i] = pattern(sector + k, i);
}

static uint8_t ring_blk[4096] __attribute__((aligned(4096)));
static uint8_t buf_a[1 << 20] __attribute__((aligned(4096)));
static uint8_t buf_b[1 << 20] __attribute__((aligned(4096)));

/* Each request slot owns four descriptors: header, up to two data
   segments, status. The chain head 4*slot identifies it in the used ring. */
#define SLOTS 16
#define SLOT_DESCS 4

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_slot {
	struct blk_hdr hdr;
	uint8_t status;
	uint8_t busy;
	uint32_t len;
};

static struct vdev blk;
static struct vq blkq;
static struct blk_slot slots[SLOTS] __attribute__((aligned(64)));
static unsigned qdmax;
static uint64_t capacity;

/* blk_submit publishes request slot (not yet kicked). Data goes in one
   descriptor, or two when split is set (halves of len), to exercise
   chained data buffers. */
static void blk_submit(unsigned slot, uint32_t type, uint64_t sector, void *buf, uint32_t len, int split)
{
	struct blk_slot *s = &slots[slot];
	struct vring_desc *d = blkq.desc;
	uint16_t h = (uint16_t)(slot * SLOT_DESCS);
	uint16_t n = h;
	uint16_t wflag = type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0;

	s->hdr.type = type;
	s->hdr.reserved = 0;
	s->hdr.sector = sector;
	s->status = 0xff;
	s->busy = 1;
	s->len = len;
	d[n] = (struct vring_desc){(uintptr_t)&s->hdr, sizeof(s->hdr), VRING_DESC_F_NEXT, (uint16_t)(n + 1)};
	n++;
	if (len && split) {
		uint32_t half = len / 2;
		d[n] = (struct vring_desc){(uintptr_t)buf, half, VRING_DESC_F_NEXT | wflag, (uint16_t)(n + 1)};
		n++;
		d[n] = (struct vring_desc){(uintptr_t)buf + half, len - half, VRING_DESC_F_NEXT | wflag, (uint16_t)(n + 1)};
		n++;
	} else if (len) {
		d[n] = (struct vring_desc){(uintptr_t)buf, len, VRING_DESC_F_NEXT | wflag, (uint16_t)(n + 1)};
		n++;
	}
	d[n] = (struct vring_desc){(uintptr_t)&s->status, 1, VRING_DESC_F_WRITE, 0};
	vq_publish(&blkq, h);
}

/* blk_complete waits for one completion, checks it, returns its slot. */
static unsigned blk_complete(void)
{
	uint32_t len;
	uint16_t id = vq_wait(&blkq, &len);
	unsigned slot = id / SLOT_DESCS;
	if (id % SLOT_DESCS || slot >= qdmax || !slots[slot].busy)
		fail(EXIT_IO, "blk: used id %u is not an outstanding request", (uint64_t)id);
	struct blk_slot *s = &slots[slot];
	s->busy = 0;
	if (s->status != VIRTIO_BLK_S_OK)
		fail(EXIT_IO, "blk: request type %u sector %u len %u: status %u", (uint64_t)s->hdr.type,
		     s->hdr.sector, (uint64_t)s->len, (uint64_t)s->status);
	/* The used length counts bytes written into our buffers: data + status
	   for reads. Devices differ on writes (QEMU reports 1 or 0), so only a
	   read's length is checked. */
	if (s->hdr.type == VIRTIO_BLK_T_IN && len != s->len + 1)
		fail(EXIT_IO, "blk: read of %u bytes reported used length %u", (uint64_t)s->len, (uint64_t)len);
	return slot;
}

static void blk_sync(uint32_t type, uint64_t sector, void *buf, uint32_t len, int split)
{
	blk_submit(0, type, sector, buf, len, split);
	vq_kick(&blkq);
	blk_complete();
}

static uint64_t blk_capacity(void)
{
	uint64_t cap;
	uint8_t gen;
	do {
		gen = mmio_r8(blk.common + 0x15);
		cap = mmio_r32(blk.devcfg) | (uint64_t)mmio_r32(blk.devcfg + 4) << 32;
	} while (gen != mmio_r8(blk.common + 0x15));
	return cap;
}

static void blk_setup(void)
{
	if (!vdev_find(&blk, VIRTIO_ID_BLK, "blk"))
		fail(EXIT_NO_BLK, "no virtio-blk device (1af4:1042) on PCI bus 0");
	if (!blk.devcfg)
		fail(EXIT_PCI, "blk: no device configuration capability");
	vdev_init(&blk, VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
	vq_setup(&blk, &blkq, 0, ring_blk);
	vdev_ready(&blk);
	qdmax = blkq.size / SLOT_DESCS;
	if (qdmax > SLOTS)
		qdmax = SLOTS;
	if (qdmax == 0)
		fail(EXIT_QUEUE, "blk: queue size %u is too small", (uint64_t)blkq.size);
	capacity = blk_capacity();
	print("virtio: blk capacity=%u\n", capacity);
	if (blk.features & VIRTIO_BLK_F_RO)
		fail(EXIT_DISK, "blk: device is read-only");
}

#if !BENCH

static uint8_t ring_rng[4096] __attribute__((aligned(4096)));

static void verify(const uint8_t *buf, uint64_t sector, uint32_t nsect, const char *what)
{
	for (uint32_t k = 0; k < nsect; k++)
		for (uint32_t i = 0; i < 512; i++)
			if (buf[k * 512 + i] != pattern(sector + k, i))
				fail(EXIT_DATA, "blk %s: sector %u byte %u is 0x%x, want 0x%x", what,
				     sector + k, (uint64_t)i, (uint64_t)buf[k * 512 + i],
				     (uint64_t)pattern(sector + k, i));
}

static void blk_check(void)
{
	if (capacity < HEAD_SECTORS + TAIL_SECTORS)
		fail(EXIT_DISK, "blk: capacity %u is below %u sectors", capacity,
		     (uint64_t)(HEAD_SECTORS + TAIL_SECTORS));
	unsigned qd = qdmax < 4 ? qdmax : 4;

	/* Head: 4 KiB writes, qd at a time, completions in any order. */
	fill(buf_a, 0, HEAD_SECTORS);
	for (unsigned s = 0; s < HEAD_SECTORS;) {
		unsigned n = 0;
		for (; n < qd && s < HEAD_SECTORS; n++, s += 8)
			blk_submit(n, VIRTIO_BLK_T_OUT, s, buf_a + s * 512, 4096, n & 1);
		vq_kick(&blkq);
		while (n--)
			blk_complete();
	}
	/* Tail: one write of the last sectors. */
	uint64_t tail = capacity - TAIL_SECTORS;
	fill(buf_a, tail, TAIL_SECTORS);
	blk_sync(VIRTIO_BLK_T_OUT, tail, buf_a, TAIL_SECTORS * 512, 0);

	/* Read the head back in one request, then in two-segment 8 KiB ones. */
	memset(buf_b, 0xee, HEAD_SECTORS * 512);
	blk_sync(VIRTIO_BLK_T_IN, 0, buf_b, HEAD_SECTORS * 512, 0);
	verify(buf_b, 0, HEAD_SECTORS, "one-request read");
	memset(buf_b, 0xee, HEAD_SECTORS * 512);
	for (unsigned s = 0; s < HEAD_SECTORS; s += 16)
		blk_sync(VIRTIO_BLK_T_IN, s, buf_b + s * 512, 8192, 1);
	verify(buf_b, 0, HEAD_SECTORS, "split read");
	memset(buf_b, 0xee, TAIL_SECTORS * 512);
	blk_sync(VIRTIO_BLK_T_IN, tail, buf_b, TAIL_SECTORS * 512, 0);
	verify(buf_b, tail, TAIL_SECTORS, "tail read");
	print("virtio: blk write+read ok %u sectors\n", (uint64_t)(HEAD_SECTORS + TAIL_SECTORS));

	if (blk.features & VIRTIO_BLK_F_FLUSH) {
		blk_sync(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0);
		print("virtio: blk flush ok\n");
	} else {
		print("virtio: blk flush not offered\n");
	}
}

static void rng_check(void)
{
	static struct vdev rng;
	static struct vq rngq;
	static uint8_t out[64];

	if (!vdev_find(&rng, VIRTIO_ID_RNG, "rng"))
		fail(EXIT_NO_RNG, "no virtio-rng device (1af4:1044) on PCI bus 0");
	vdev_init(&rng, 0);
	vq_setup(&rng, &rngq, 0, ring_rng);
	vdev_ready(&rng);

	uint32_t got = 0;
	for (int tries = 0; got < sizeof(out); tries++) {
		if (tries == 64)
			fail(EXIT_RNG, "rng: only %u bytes after 64 requests", (uint64_t)got);
		rngq.desc[0] = (struct vring_desc){(uintptr_t)out + got, (uint32_t)sizeof(out) - got, VRING_DESC_F_WRITE, 0};
		vq_publish(&rngq, 0);
		vq_kick(&rngq);
		uint32_t len;
		if (vq_wait(&rngq, &len) != 0)
			fail(EXIT_RNG, "rng: unexpected used id");
		if (len > sizeof(out) - got)
			fail(EXIT_RNG, "rng: used length %u exceeds buffer", (uint64_t)len);
		got += len;
	}
	uint8_t any = 0;
	for (unsigned i = 0; i < sizeof(out); i++)
		any |= out[i];
	if (!any)
		fail(EXIT_RNG, "rng: %u bytes, all zero", (uint64_t)got);
	print("virtio: rng ok %u bytes\n", (uint64_t)got);
}

void cmain(void)
{
	puts("virtio: driver start\n");
	pci_list();
	blk_setup();
	blk_check();
	rng_check();
	puts("virtio: all ok\n");
	exit_qemu(EXIT_OK);
}

#else /* BENCH */

/* Benchmark sizes: moderate, for a 64 MiB disk. */
#define SEQ_CHUNK (1u << 20)
#define SEQ_MAX_BYTES (64ull << 20)
#define RAND_COUNT 4096
#define RAND_SIZE 4096

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void check_word(const uint8_t *buf, uint64_t sector)
{
	/* First 8 bytes of the sector, enough to catch a wrong offset. */
	for (uint32_t i = 0; i < 8; i++)
		if (buf[i] != pattern(sector, i))
			fail(EXIT_DATA, "vbench: sector %u byte %u is 0x%x, want 0x%x", sector, (uint64_t)i,
			     (uint64_t)buf[i], (uint64_t)pattern(sector, i));
}

/* randread: count 4 KiB reads at random 4 KiB-aligned offsets below
   limit sectors, qd requests in flight. */
static void randread(const char *name, unsigned qd, uint64_t limit)
{
	uint64_t blocks = limit / (RAND_SIZE / 512);
	if (qd > qdmax)
		qd = qdmax;
	print("vbench: %s start\n", name);
	unsigned sent = 0, done = 0;
	while (done < RAND_COUNT) {
		unsigned slot;
		/* Fill the queue, kick once, then refill a slot per completion. */
		if (sent < RAND_COUNT && sent - done < qd) {
			for (slot = 0; slot < qd && sent < RAND_COUNT; slot++) {
				if (slots[slot].busy)
					continue;
				blk_submit(slot, VIRTIO_BLK_T_IN, (xorshift() % blocks) * (RAND_SIZE / 512),
					   buf_b + slot * RAND_SIZE, RAND_SIZE, 0);
				sent++;
			}
			vq_kick(&blkq);
		}
		slot = blk_complete();
		check_word(buf_b + slot * RAND_SIZE, slots[slot].hdr.sector);
		done++;
	}
	print("vbench: %s done %u\n", name, (uint64_t)done);
}

void cmain(void)
{
	puts("vbench: driver start\n");
	pci_list();
	blk_setup();
	uint64_t bytes = capacity * 512;
	if (bytes > SEQ_MAX_BYTES)
		bytes = SEQ_MAX_BYTES;
	uint64_t chunks = bytes / SEQ_CHUNK;
	if (chunks == 0)
		fail(EXIT_DISK, "vbench: disk is smaller than 1 MiB");
	/* 2048*31 is a multiple of 256, so every 1 MiB-aligned chunk holds the
	   same bytes: one buffer fills the whole disk with the pattern. */
	fill(buf_a, 0, SEQ_CHUNK / 512);
	print("vbench: config seq=%ux%u rand=%ux%u\n", chunks, (uint64_t)SEQ_CHUNK, (uint64_t)RAND_COUNT,
	      (uint64_t)RAND_SIZE);

	puts("vbench: seqwrite start\n");
	for (uint64_t c = 0; c < chunks; c++)
		blk_sync(VIRTIO_BLK_T_OUT, c * (SEQ_CHUNK / 512), buf_a, SEQ_CHUNK, 0);
	print("vbench: seqwrite done %u\n", chunks);

	if (blk.features & VIRTIO_BLK_F_FLUSH) {
		puts("vbench: flush start\n");
		blk_sync(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0);
		puts("vbench: flush done 1\n");
	}

	puts("vbench: seqread start\n");
	for (uint64_t c = 0; c < chunks; c++) {
		blk_sync(VIRTIO_BLK_T_IN, c * (SEQ_CHUNK / 512), buf_b, SEQ_CHUNK, 0);
		const uint64_t *x = (const uint64_t *)buf_a, *y = (const uint64_t *)buf_b;
		for (unsigned i = 0; i < SEQ_CHUNK / 8; i++)
			if (x[i] != y[i])
				fail(EXIT_DATA, "vbench: chunk %u differs at byte %u", c, (uint64_t)i * 8);
	}
	print("vbench: seqread done %u\n", chunks);

	uint64_t limit = chunks * (SEQ_CHUNK / 512);
	randread("randread", 1, limit);
	randread("randread-qd4", 4, limit);
	puts("vbench: all ok\n");
	exit_qemu(EXIT_OK);
}

#endif
