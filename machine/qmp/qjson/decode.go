package qjson

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits as QEMU's json-streamer.c: they bound the memory and the recursion
// depth one message can force.
const (
	maxTokenSize  = 64 << 20
	maxTokenCount = 2 << 20
	maxNesting    = 1 << 10
)

// Lexer states and token kinds share one number space, as in QEMU's table.
const (
	stRecovery = iota + 1
	stDQ
	stDQEsc
	stSQ
	stSQEsc
	stZero
	stExpDigits
	stExpSign
	stExpE
	stMantissa
	stMantissaDigits
	stDigits
	stSign
	stKeyword
	stStart

	tkLCurly
	tkRCurly
	tkLSquare
	tkRSquare
	tkColon
	tkComma
	tkInteger
	tkFloat
	tkKeyword
	tkString
	tkError
)

type token struct {
	kind int
	text string
}

// Decoder cuts a byte stream into JSON values exactly where QEMU's QMP
// monitor would, and reports the errors QEMU reports. Feed it bytes as they
// arrive; it calls emit once per value or error.
type Decoder struct {
	emit      func(v Value, err error)
	state     int
	tok       []byte
	tokens    []token
	tokenSize int
	brace     int
	bracket   int
}

// NewDecoder returns a Decoder that reports each parsed value, or each
// error, to emit. emit is called from Feed.
func NewDecoder(emit func(v Value, err error)) *Decoder {
	return &Decoder{emit: emit, state: stStart}
}

// Feed consumes bytes.
func (d *Decoder) Feed(p []byte) {
	for _, ch := range p {
		d.feedByte(ch)
	}
}

// next is one step of QEMU's json_lexer table: the new state or token kind,
// and whether the byte must be looked at again from the start state.
func next(state int, ch byte) (int, bool) {
	isDigit := ch >= '0' && ch <= '9'
	switch state {
	case stRecovery:
		switch {
		case ch == '\t':
			return stRecovery, false
		case ch < 0x20, ch >= 0xFE, ch == '[', ch == ']', ch == '{', ch == '}', ch == ':', ch == ',':
			return stStart, true
		}
		return stRecovery, false
	case stDQ, stSQ:
		quote, esc := byte('"'), stDQEsc
		if state == stSQ {
			quote, esc = '\'', stSQEsc
		}
		switch {
		case ch == '\\':
			return esc, false
		case ch == quote:
			return tkString, false
		case ch >= 0x20 && ch <= 0xFD:
			return state, false
		}
		return tkError, false
	case stDQEsc, stSQEsc:
		if ch >= 0x20 && ch <= 0xFD {
			if state == stDQEsc {
				return stDQ, false
			}
			return stSQ, false
		}
		return tkError, false
	case stZero:
		switch {
		case isDigit:
			return tkError, false
		case ch == '.':
			return stMantissa, false
		}
		return tkInteger, true
	case stExpDigits:
		if isDigit {
			return stExpDigits, false
		}
		return tkFloat, true
	case stExpSign:
		if isDigit {
			return stExpDigits, false
		}
		return tkError, false
	case stExpE:
		switch {
		case ch == '-' || ch == '+':
			return stExpSign, false
		case isDigit:
			return stExpDigits, false
		}
		return tkError, false
	case stMantissaDigits:
		switch {
		case isDigit:
			return stMantissaDigits, false
		case ch == 'e' || ch == 'E':
			return stExpE, false
		}
		return tkFloat, true
	case stMantissa:
		if isDigit {
			return stMantissaDigits, false
		}
		return tkError, false
	case stDigits:
		switch {
		case isDigit:
			return stDigits, false
		case ch == 'e' || ch == 'E':
			return stExpE, false
		case ch == '.':
			return stMantissa, false
		}
		return tkInteger, true
	case stSign:
		switch {
		case ch == '0':
			return stZero, false
		case ch >= '1' && ch <= '9':
			return stDigits, false
		}
		return tkError, false
	case stKeyword:
		if ch >= 'a' && ch <= 'z' {
			return stKeyword, false
		}
		return tkKeyword, true
	}
	// stStart
	switch {
	case ch == '"':
		return stDQ, false
	case ch == '\'':
		return stSQ, false
	case ch == '0':
		return stZero, false
	case ch >= '1' && ch <= '9':
		return stDigits, false
	case ch == '-':
		return stSign, false
	case ch == '{':
		return tkLCurly, false
	case ch == '}':
		return tkRCurly, false
	case ch == '[':
		return tkLSquare, false
	case ch == ']':
		return tkRSquare, false
	case ch == ',':
		return tkComma, false
	case ch == ':':
		return tkColon, false
	case ch >= 'a' && ch <= 'z':
		return stKeyword, false
	case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
		return stStart, false
	}
	return tkError, false
}

func (d *Decoder) feedByte(ch byte) {
	for consumed := false; !consumed; {
		n, lookahead := next(d.state, ch)
		consumed = !lookahead
		if consumed {
			d.tok = append(d.tok, ch)
		}
		switch {
		case n >= tkLCurly && n < tkError:
			d.token(n, string(d.tok))
			d.tok = d.tok[:0]
			n = stStart
		case n == stStart:
			d.tok = d.tok[:0]
		case n == tkError:
			d.token(tkError, string(d.tok))
			d.tok = d.tok[:0]
			n = stRecovery
		case n == stRecovery:
			d.tok = d.tok[:0]
		}
		d.state = n
	}
	if len(d.tok) > maxTokenSize {
		d.tok = d.tok[:0]
		d.state = stStart
		d.fail("JSON token size limit exceeded")
	}
}

// fail drops the message being collected and reports err.
func (d *Decoder) fail(msg string) {
	d.reset()
	d.emit(nil, &SyntaxError{Msg: msg})
}

func (d *Decoder) reset() {
	d.brace, d.bracket = 0, 0
	d.tokens = d.tokens[:0]
	d.tokenSize = 0
}

// token is QEMU's json_message_process_token.
func (d *Decoder) token(kind int, text string) {
	switch kind {
	case tkLCurly:
		d.brace++
	case tkRCurly:
		d.brace--
	case tkLSquare:
		d.bracket++
	case tkRSquare:
		d.bracket--
	case tkError:
		d.fail("JSON parse error, stray '" + text + "'")
		return
	}
	switch {
	case d.tokenSize+len(text)+1 > maxTokenSize:
		d.fail("JSON token size limit exceeded")
		return
	case len(d.tokens)+1 > maxTokenCount:
		d.fail("JSON token count limit exceeded")
		return
	case d.bracket+d.brace > maxNesting:
		d.fail("JSON nesting depth limit exceeded")
		return
	}
	d.tokens = append(d.tokens, token{kind, text})
	d.tokenSize += len(text)
	// QEMU tests bracket_count twice and never brace_count here; a
	// negative brace count with open brackets keeps collecting.
	if (d.brace > 0 || d.bracket > 0) && d.bracket >= 0 {
		return
	}
	p := parser{toks: d.tokens}
	v, ok := p.value()
	var err error
	if !ok || p.err != "" {
		v, err = nil, &SyntaxError{Msg: "JSON parse error, " + p.err}
	}
	d.reset()
	d.emit(v, err)
}

// SyntaxError is a message QEMU would send as a GenericError.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

// parser is QEMU 7.2's recursive-descent json-parser.c over one message's
// tokens. Only the first error counts, as in QEMU.
type parser struct {
	toks []token
	pos  int
	err  string
}

func (p *parser) fail(msg string) {
	if p.err == "" {
		p.err = msg
	}
}

func (p *parser) peek() *token {
	if p.pos >= len(p.toks) {
		return nil
	}
	return &p.toks[p.pos]
}

func (p *parser) pop() *token {
	t := p.peek()
	if t != nil {
		p.pos++
	}
	return t
}

func (p *parser) value() (Value, bool) {
	t := p.peek()
	if t == nil {
		p.fail("premature EOI")
		return nil, false
	}
	switch t.kind {
	case tkLCurly:
		return p.object()
	case tkLSquare:
		return p.array()
	case tkInteger, tkFloat, tkString:
		p.pop()
		return p.literal(t)
	case tkKeyword:
		p.pop()
		switch t.text {
		case "true":
			return true, true
		case "false":
			return false, true
		case "null":
			return nil, true
		}
		p.fail(fmt.Sprintf("invalid keyword '%s'", t.text))
		return nil, false
	}
	p.fail("expecting value")
	return nil, false
}

func (p *parser) object() (Value, bool) {
	p.pop() // '{'
	d := &Dict{vals: map[string]Value{}}
	if t := p.peek(); t == nil {
		p.fail("premature EOI")
		return nil, false
	} else if t.kind == tkRCurly {
		p.pop()
		return d, true
	}
	if !p.pair(d) {
		return nil, false
	}
	for {
		t := p.pop()
		if t == nil {
			p.fail("premature EOI")
			return nil, false
		}
		if t.kind == tkRCurly {
			return d, true
		}
		if t.kind != tkComma {
			p.fail("expected separator in dict")
			return nil, false
		}
		if !p.pair(d) {
			return nil, false
		}
	}
}

func (p *parser) pair(d *Dict) bool {
	if p.peek() == nil {
		p.fail("premature EOI")
		return false
	}
	k, ok := p.value()
	key, isStr := k.(string)
	if !ok || !isStr {
		p.fail("key is not a string in object")
		return false
	}
	t := p.pop()
	if t == nil {
		p.fail("premature EOI")
		return false
	}
	if t.kind != tkColon {
		p.fail("missing : in object pair")
		return false
	}
	v, ok := p.value()
	if !ok {
		p.fail("Missing value in dict")
		return false
	}
	if d.Has(key) {
		p.fail("duplicate key")
		return false
	}
	d.Set(key, v)
	return true
}

func (p *parser) array() (Value, bool) {
	p.pop() // '['
	list := []Value{}
	if t := p.peek(); t == nil {
		p.fail("premature EOI")
		return nil, false
	} else if t.kind == tkRSquare {
		p.pop()
		return list, true
	}
	for {
		v, ok := p.value()
		if !ok {
			p.fail("expecting value")
			return nil, false
		}
		list = append(list, v)
		t := p.pop()
		if t == nil {
			p.fail("premature EOI")
			return nil, false
		}
		if t.kind == tkRSquare {
			return list, true
		}
		if t.kind != tkComma {
			p.fail("expected separator in list")
			return nil, false
		}
	}
}

func (p *parser) literal(t *token) (Value, bool) {
	switch t.kind {
	case tkString:
		return p.str(t.text)
	case tkInteger:
		// int64 if it fits, else uint64, else a double, as QEMU.
		if i, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return i, true
		}
		if !strings.HasPrefix(t.text, "-") {
			if u, err := strconv.ParseUint(t.text, 10, 64); err == nil {
				return u, true
			}
		}
	}
	// strtod: out-of-range values become ±Inf or 0, never an error.
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil && !math.IsInf(f, 0) && f != 0 {
		p.fail("invalid number")
		return nil, false
	}
	return f, true
}

// str decodes a string token (quotes included) as QEMU's parse_string.
func (p *parser) str(tok string) (Value, bool) {
	if len(tok) < 2 {
		p.fail("invalid string")
		return nil, false
	}
	s := tok[1 : len(tok)-1] // the lexer guarantees the closing quote
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			cp, n := modUTF8Codepoint(s[i:])
			if cp < 0 {
				p.fail("invalid UTF-8 sequence in string")
				return nil, false
			}
			b.WriteRune(cp)
			i += n
			continue
		}
		beg := i
		i++
		if i >= len(s) {
			p.fail("invalid escape sequence in string")
			return nil, false
		}
		e := s[i]
		i++
		switch e {
		case '"', '\'', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			cp, n := hex4(s[i:])
			i += n
			if cp >= 0xD800 && cp <= 0xDBFF && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				cp = 0x10000 + (cp&0x3FF)<<10
				trail, n := hex4(s[i+2:])
				if trail >= 0xDC00 && trail <= 0xDFFF {
					cp |= trail & 0x3FF
					i += 2 + n
				} else {
					cp = -1
				}
			}
			if !validCodepoint(cp) {
				p.fail(s[beg:i] + " is not a valid Unicode character")
				return nil, false
			}
			b.WriteRune(rune(cp))
		default:
			p.fail("invalid escape sequence in string")
			return nil, false
		}
	}
	return b.String(), true
}

// hex4 reads up to four hex digits; -1 if fewer than four are there.
func hex4(s string) (cp, n int) {
	cp = 0
	for n = 0; n < 4; n++ {
		if n >= len(s) {
			return -1, n
		}
		c := s[n]
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'a' && c <= 'f':
			v = int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v = int(c-'A') + 10
		default:
			return -1, min(4, len(s))
		}
		cp = cp<<4 | v
	}
	return cp, 4
}

// validCodepoint is QEMU's is_valid_codepoint: no surrogates, no
// noncharacters, nothing beyond U+10FFFF.
func validCodepoint(cp int) bool {
	switch {
	case cp < 0 || cp > 0x10FFFF:
		return false
	case cp >= 0xFDD0 && cp <= 0xFDEF, cp&0xFFFE == 0xFFFE:
		return false
	case cp >= 0xD800 && cp <= 0xDFFF:
		return false
	}
	return true
}

// modUTF8Codepoint decodes one code point of modified UTF-8 (where
// "\xC0\x80" is U+0000) as QEMU's mod_utf8_codepoint: it returns -1 for an
// invalid sequence and always consumes at least one byte of a non-empty s.
func modUTF8Codepoint(s string) (rune, int) {
	if len(s) == 0 {
		return -1, 0
	}
	c := s[0]
	switch {
	case c == 0:
		return -1, 1
	case c < 0x80:
		return rune(c), 1
	case c >= 0xFE, c&0x40 == 0:
		return -1, 1
	}
	length := 0
	mask := byte(0x80)
	for ; c&mask != 0; mask >>= 1 {
		length++
	}
	cp := int(c & (mask - 1))
	i := 1
	for ; i < length; i++ {
		if i >= len(s) || i >= 6 || s[i]&0xC0 != 0x80 {
			return -1, i
		}
		cp = cp<<6 | int(s[i]&0x3F)
	}
	minCP := [...]int{0x80, 0x800, 0x10000, 0x200000, 0x4000000}
	if !validCodepoint(cp) || (cp < minCP[length-2] && !(cp == 0 && length == 2)) {
		return -1, i
	}
	return rune(cp), i
}
