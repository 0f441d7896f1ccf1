/* PCI configuration mechanism #1 on bus 0, and the virtio 1.x PCI transport
   (modern devices only) with one split virtqueue per queue in use. */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "rt.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_ID_CONSOLE 0x1043
#define VIRTIO_ID_BLK 0x1042
#define VIRTIO_ID_RNG 0x1044

#define VIRTIO_F_VERSION_1 (1ull << 32)

/* Queue sizes this driver uses at most; rings live in one 4 KiB page. */
#define VQ_MAX 64

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vdev {
	const char *name;
	uint8_t devfn;          /* dev*8 + fn on bus 0 */
	uint16_t device_id;
	uintptr_t common;       /* virtio_pci_common_cfg */
	uintptr_t notify;       /* notification area base */
	uint32_t notify_mult;   /* notify_off_multiplier */
	uintptr_t isr;
	uintptr_t devcfg;       /* device-specific configuration */
	uint64_t offered;       /* device features */
	uint64_t features;      /* negotiated */
};

struct vq {
	struct vdev *dev;
	uint16_t index;
	uint16_t size;
	struct vring_desc *desc;
	volatile uint16_t *avail;  /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;    /* flags, idx, ring[size]{id u32, len u32} */
	uint16_t avail_idx;        /* next free slot index we publish */
	uint16_t last_used;        /* used entries consumed so far */
	uintptr_t notify_addr;
};

/* pci_list prints every virtio device on bus 0. */
void pci_list(void);
/* vdev_find locates the first virtio device on bus 0 with device_id (a
   modern ID; the transitional ID of the same type matches too), enables
   memory space and bus mastering, and maps its capabilities. Returns 0 if
   there is none; fails the run if it is unusable. */
int vdev_find(struct vdev *d, uint16_t device_id, const char *name);
/* vdev_init resets the device and negotiates VERSION_1 plus whichever of
   wanted the device offers, up to FEATURES_OK. */
void vdev_init(struct vdev *d, uint64_t wanted);
/* vq_setup sizes queue index to min(device max, VQ_MAX), places its rings
   in ringpage (4 KiB, page aligned, zeroed here) and enables it. */
void vq_setup(struct vdev *d, struct vq *q, uint16_t index, void *ringpage);
/* vdev_ready sets DRIVER_OK. */
void vdev_ready(struct vdev *d);

/* vq_publish makes the chain starting at descriptor head available;
   vq_kick notifies the device; vq_wait spins until one used entry arrives
   and returns its id (the chain head) and written length. */
void vq_publish(struct vq *q, uint16_t head);
void vq_kick(struct vq *q);
uint16_t vq_wait(struct vq *q, uint32_t *len);

#endif
