package qjson

import (
	"fmt"
	"math"
	"strconv"
)

// Marshal writes v as QEMU's compact JSON writer does: ": " and ", "
// separators, objects in QDict order, strings escaped as QEMU's quoted_str,
// floats as printf("%.17g"). Unsupported Go types are written as null.
func Marshal(v Value) []byte {
	return AppendValue(nil, v)
}

// AppendValue appends the encoding of v to buf.
func AppendValue(buf []byte, v Value) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		if x {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int32:
		return strconv.AppendInt(buf, int64(x), 10)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case uint:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(buf, x, 10)
	case float64:
		return append(buf, formatG17(x)...)
	case string:
		return appendString(buf, x)
	case []Value:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = AppendValue(buf, e)
		}
		return append(buf, ']')
	case []string:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = appendString(buf, e)
		}
		return append(buf, ']')
	case *Dict:
		buf = append(buf, '{')
		for i, k := range x.Keys() {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = appendString(buf, k)
			buf = append(buf, ": "...)
			buf = AppendValue(buf, x.vals[k])
		}
		return append(buf, '}')
	}
	return append(buf, "null"...)
}

// formatG17 is C's printf("%.17g"), including glibc's inf and nan.
func formatG17(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	}
	// Go's 'g' with a precision drops trailing zeros and switches to an
	// exponent with at least two digits exactly where C's %g does.
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// appendString is QEMU's quoted_str: the short escapes for " \ \b \f \n \r
// \t, \u%04X for other control characters and everything from U+007F up
// (surrogate pairs beyond the BMP), U+FFFD for invalid UTF-8.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		cp, n := modUTF8Codepoint(s[i:])
		if s[i] == 0 { // a Go string may hold NUL; QEMU's cannot, write it as U+0000
			cp, n = 0, 1
		}
		i += n
		switch cp {
		case '"':
			buf = append(buf, `\"`...)
		case '\\':
			buf = append(buf, `\\`...)
		case '\b':
			buf = append(buf, `\b`...)
		case '\f':
			buf = append(buf, `\f`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		default:
			if cp < 0 {
				cp = 0xFFFD
			}
			switch {
			case cp > 0xFFFF:
				buf = fmt.Appendf(buf, `\u%04X\u%04X`, 0xD800+((cp-0x10000)>>10), 0xDC00+((cp-0x10000)&0x3FF))
			case cp < 0x20 || cp >= 0x7F:
				buf = fmt.Appendf(buf, `\u%04X`, cp)
			default:
				buf = append(buf, byte(cp))
			}
		}
	}
	return append(buf, '"')
}
