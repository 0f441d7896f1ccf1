package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Opt is one key=value of a QemuOpts string.
type Opt struct {
	Key, Value string
	Flag       bool   // given in the short boolean form ("server", "nowait")
	FlagText   string // the flag as written, for the deprecation warning
}

// Opts is a parsed QemuOpts string, in order. Later keys override earlier
// ones, as in QEMU.
type Opts struct {
	List []Opt
	used map[string]bool
}

// ParseOpts parses QEMU's "key=value,key=value" syntax. implied is the name
// of the key a leading bare value belongs to ("size" for -m 1G), or "".
// ",," is a literal comma in a value. A bare word that is not the first is a
// short-form boolean: "foo" = foo=on, "nofoo" = foo=off.
func ParseOpts(s, implied string) (*Opts, error) {
	o := &Opts{used: map[string]bool{}}
	first := true
	for p := s; p != ""; {
		n := strings.IndexAny(p, "=,")
		if n < 0 || p[n] == ',' {
			if first && implied != "" {
				var v string
				v, p = optValue(p)
				o.List = append(o.List, Opt{Key: implied, Value: v})
			} else {
				name := p
				if n >= 0 {
					name = p[:n]
					p = p[n+1:]
				} else {
					p = ""
				}
				opt := Opt{Key: name, Value: "on", Flag: true, FlagText: name}
				if strings.HasPrefix(name, "no") {
					opt.Key, opt.Value = name[2:], "off"
				}
				o.List = append(o.List, opt)
			}
		} else {
			key := p[:n]
			var v string
			v, p = optValue(p[n+1:])
			o.List = append(o.List, Opt{Key: key, Value: v})
		}
		first = false
	}
	return o, nil
}

// optValue reads a value up to a single ',' (",," is a literal comma) and
// returns it with the rest after the separator.
func optValue(p string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == ',' {
			if i+1 < len(p) && p[i+1] == ',' {
				b.WriteByte(',')
				i++
				continue
			}
			return b.String(), p[i+1:]
		}
		b.WriteByte(p[i])
	}
	return b.String(), ""
}

// Get returns the last value of key and marks it used.
func (o *Opts) Get(key string) (string, bool) {
	o.used[key] = true
	for i := len(o.List) - 1; i >= 0; i-- {
		if o.List[i].Key == key {
			return o.List[i].Value, true
		}
	}
	return "", false
}

// Str returns the value of key or def.
func (o *Opts) Str(key, def string) string {
	if v, ok := o.Get(key); ok {
		return v
	}
	return def
}

// Bool parses key as a QEMU boolean.
func (o *Opts) Bool(key string, def bool) (bool, error) {
	v, ok := o.Get(key)
	if !ok {
		return def, nil
	}
	return parseBool(key, v)
}

// Has reports whether key was given.
func (o *Opts) Has(key string) bool {
	for _, x := range o.List {
		if x.Key == key {
			return true
		}
	}
	return false
}

// Unused returns the first key not consumed by Get, in command-line order.
func (o *Opts) Unused() (string, bool) {
	for _, x := range o.List {
		if !o.used[x.Key] {
			return x.Key, true
		}
	}
	return "", false
}

// checkKnown refuses the first unused key with QEMU's "Invalid parameter".
func (o *Opts) checkKnown() error {
	if k, ok := o.Unused(); ok {
		return errf(fmt.Sprintf("Invalid parameter '%s'", k))
	}
	return nil
}

// Flags lists the short-form booleans given, for deprecation warnings.
func (o *Opts) Flags() []Opt {
	var out []Opt
	for _, x := range o.List {
		if x.Flag {
			out = append(out, x)
		}
	}
	return out
}

func parseBool(key, v string) (bool, error) {
	switch v {
	case "on", "yes", "true", "y":
		return true, nil
	case "off", "no", "false", "n":
		return false, nil
	}
	return false, errf(fmt.Sprintf("Parameter '%s' expects 'on' or 'off'", key))
}

// ParseJSONOpts turns the JSON form of -device/-object/-netdev/-blockdev
// into Opts. Nested objects are flattened with dots, as QEMU's keyval does
// ({"file":{"driver":"file"}} -> file.driver=file). Keys come out sorted so
// the result does not depend on map order.
func ParseJSONOpts(s string) (*Opts, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, errf("JSON parse error, " + jsonErrText(err))
	}
	if dec.More() {
		return nil, errf("JSON parse error, expecting end of input")
	}
	o := &Opts{used: map[string]bool{}}
	if err := flattenJSON(o, "", m); err != nil {
		return nil, err
	}
	return o, nil
}

func jsonErrText(err error) string {
	if err.Error() == "unexpected EOF" || err.Error() == "EOF" {
		return "premature EOI"
	}
	return err.Error()
}

func flattenJSON(o *Opts, prefix string, m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := prefix + k
		switch v := m[k].(type) {
		case string:
			o.List = append(o.List, Opt{Key: name, Value: v})
		case json.Number:
			o.List = append(o.List, Opt{Key: name, Value: v.String()})
		case bool:
			o.List = append(o.List, Opt{Key: name, Value: map[bool]string{true: "on", false: "off"}[v]})
		case map[string]any:
			if err := flattenJSON(o, name+".", v); err != nil {
				return err
			}
		default:
			return errf(fmt.Sprintf("Parameter '%s' has an unsupported JSON type", name))
		}
	}
	return nil
}

// parseOptsMaybeJSON parses s as JSON when it starts with '{' (the options
// that accept JSON), else as QemuOpts with the implied first key.
func parseOptsMaybeJSON(s, implied string) (*Opts, bool, error) {
	if strings.HasPrefix(s, "{") {
		o, err := ParseJSONOpts(s)
		return o, true, err
	}
	o, err := ParseOpts(s, implied)
	return o, false, err
}

// ParseSize parses a QEMU size: a non-negative decimal (or 0x hex) number,
// optionally with a fraction, and an optional suffix B, K, M, G, T, P, E
// (any case, powers of 1024). defUnit applies when there is no suffix
// (1 for bytes, 1<<20 for -m).
func ParseSize(s string, defUnit uint64) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	i := 0
	hex := false
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		hex = true
		i = 2
		for i < len(s) && isHex(s[i]) {
			i++
		}
		if i == 2 {
			return 0, false
		}
	} else {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
		}
		if i == 0 || s[:i] == "." {
			return 0, false
		}
	}
	num, rest := s[:i], s[i:]
	unit := defUnit
	if rest != "" {
		if len(rest) != 1 {
			return 0, false
		}
		switch rest[0] {
		case 'b', 'B':
			unit = 1
		case 'k', 'K':
			unit = 1 << 10
		case 'm', 'M':
			unit = 1 << 20
		case 'g', 'G':
			unit = 1 << 30
		case 't', 'T':
			unit = 1 << 40
		case 'p', 'P':
			unit = 1 << 50
		case 'e', 'E':
			unit = 1 << 60
		default:
			return 0, false
		}
	}
	if hex {
		v, err := strconv.ParseUint(num[2:], 16, 64)
		if err != nil {
			return 0, false
		}
		r, overflow := mulOverflow(v, unit)
		return r, !overflow
	}
	// Exact decimal arithmetic: 1.5G must be exactly 1536 MiB.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, false
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(unit)))
	// QEMU truncates the fractional byte.
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsUint64() {
		return 0, false
	}
	return q.Uint64(), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func mulOverflow(a, b uint64) (uint64, bool) {
	if a != 0 && b > math.MaxUint64/a {
		return 0, true
	}
	return a * b, false
}

const sizeHint = "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."

func sizeError(key string) error {
	return errHint(fmt.Sprintf("Parameter '%s' expects a non-negative number below 2^64", key), sizeHint)
}

// parseUint parses an integer the way QEMU's qemu_strtou64 does (decimal,
// 0x hex or leading-0 octal).
func parseUint(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 0, 64)
	return v, err == nil
}

// validID is QEMU's id_wellformed: a letter, then letters, digits, - . _
func validID(id string) bool {
	if id == "" {
		return false
	}
	c := id[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

const idHint = "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."

func idError() error {
	return errHint("Parameter 'id' expects an identifier", idHint)
}
