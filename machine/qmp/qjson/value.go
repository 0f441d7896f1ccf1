// Package qjson reads and writes JSON the way QEMU's QMP does, so that a
// client sees the same bytes from govmm as from QEMU:
//
//   - Input is a stream of values cut by QEMU's lexer and brace counting, with
//     its extensions (single-quoted strings) and its error messages
//     ("JSON parse error, invalid keyword 'this'"), one error per bad token.
//   - Objects are written in the iteration order of QEMU's QDict hash table,
//     ": " and ", " separate, non-ASCII is escaped as \uXXXX, floats as %.17g.
//
// Values are nil (null), bool, int64, uint64 (above MaxInt64 only, as QEMU),
// float64, string, []Value and *Dict.
package qjson

// Value is a JSON value: nil, bool, int64, uint64, float64, string, []Value or *Dict.
type Value any

// Dict is a JSON object. It remembers insertion order, which decides the
// output order of keys sharing a QDict hash bucket.
type Dict struct {
	keys []string
	vals map[string]Value
}

// NewDict returns a Dict holding the given key/value pairs in order:
// NewDict("a", 1, "b", true). Odd trailing arguments are ignored.
func NewDict(kv ...any) *Dict {
	d := &Dict{vals: make(map[string]Value, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i].(string), kv[i+1])
	}
	return d
}

// Set adds or replaces a key. A replaced key keeps its place.
func (d *Dict) Set(key string, v Value) *Dict {
	if d.vals == nil {
		d.vals = map[string]Value{}
	}
	if _, ok := d.vals[key]; !ok {
		d.keys = append(d.keys, key)
	}
	d.vals[key] = v
	return d
}

// Get returns the value of key.
func (d *Dict) Get(key string) (Value, bool) {
	if d == nil {
		return nil, false
	}
	v, ok := d.vals[key]
	return v, ok
}

// Has reports whether key is present.
func (d *Dict) Has(key string) bool {
	_, ok := d.Get(key)
	return ok
}

// Len is the number of keys.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.keys)
}

// Keys returns the keys in QDict iteration order, the order QEMU visits
// (and writes) them.
func (d *Dict) Keys() []string {
	if d == nil {
		return nil
	}
	return qdictOrder(d.keys)
}

// qdictOrder sorts keys as QEMU's QDict iterates them: by bucket
// (tdb_hash % 512), and within a bucket newest first, because qdict_put_obj
// inserts at the head of the bucket's list.
func qdictOrder(insertion []string) []string {
	out := make([]string, len(insertion))
	copy(out, insertion)
	// Insertion sort by bucket, stable on reversed insertion order; dicts are small.
	n := len(out)
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	b := make([]uint32, n)
	for i, k := range out {
		b[i] = bucket(k)
	}
	for i := 1; i < n; i++ {
		for j := i; j > 0 && b[j] < b[j-1]; j-- {
			b[j], b[j-1] = b[j-1], b[j]
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// bucket is QEMU's qdict bucket of a key: tdb_hash(key) % QDICT_BUCKET_MAX.
func bucket(key string) uint32 {
	v := uint32(0x238F13AF) * uint32(len(key))
	for i := 0; i < len(key); i++ {
		v += uint32(key[i]) << (uint(i) * 5 % 24)
	}
	return (1103515243*v + 12345) % 512
}
