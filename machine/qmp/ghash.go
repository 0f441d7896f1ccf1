package qmp

// firstUnexpected returns the argument QEMU names in "Parameter '%s' is
// unexpected" when several are left over. QEMU's input visitor puts the
// argument names in a GLib hash table (in QDict order), removes the ones the
// command declares, and reports the first one its iterator finds, so the
// slot order of GLib's open-addressing table (g_str_hash, index
// (hash*11) % prime, triangular probing, growth past 15/16 load) decides.
func firstUnexpected(keys []string, known map[string]bool) string {
	const (
		unused    = 0
		tombstone = 1
	)
	primes := []uint32{1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521}
	shift := 3
	hashes := make([]uint32, 1<<shift)
	slots := make([]string, 1<<shift)
	nnodes, noccupied := 0, 0

	var insert func(k string, h uint32)
	insert = func(k string, h uint32) {
		size := uint32(len(hashes))
		idx := (h * 11) % primes[shift]
		for step := uint32(0); hashes[idx] != unused; {
			step++
			idx = (idx + step) & (size - 1)
		}
		hashes[idx], slots[idx] = h, k
		nnodes++
		noccupied++
		if int(size) <= noccupied+noccupied/16 {
			// Grow and rehash in old slot order (GLib rehashes in place;
			// the order only matters for tables of eight or more names).
			oldH, oldS := hashes, slots
			want := int(float64(nnodes) * 1.333)
			shift = 0
			for n := want; n > 0; n >>= 1 {
				shift++
			}
			shift = max(shift, 3)
			hashes, slots = make([]uint32, 1<<shift), make([]string, 1<<shift)
			nnodes, noccupied = 0, 0
			for i, oh := range oldH {
				if oh > tombstone {
					insert(oldS[i], oh)
				}
			}
		}
	}
	for _, k := range keys {
		h := strHash(k)
		if h <= tombstone {
			h = 2
		}
		insert(k, h)
	}
	for i, h := range hashes {
		if h > tombstone && !known[slots[i]] {
			return slots[i]
		}
	}
	return ""
}

// strHash is GLib's g_str_hash (djb2 over signed chars).
func strHash(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = h<<5 + h + uint32(int32(int8(s[i])))
	}
	return h
}
