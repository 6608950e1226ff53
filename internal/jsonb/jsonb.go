// Package jsonb knows what PostgreSQL's jsonb stores, and stores as written,
// at the byte level of the JSON text: the checks valid JSON still needs
// before a Put may acknowledge it, and the exact decoding of a JSON string
// the writer's inputs need. Put's checks allocate nothing for small objects.
package jsonb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// PostgreSQL's numeric, which jsonb stores numbers in, holds at most this
// many digits before the decimal point and after it.
const (
	maxNumericIntDigits  = 131072
	maxNumericFracDigits = 16383
)

// MaxDepth is the deepest nesting a value may have. encoding/json stops at
// 10000 levels; an op's line in `writer apply` wraps the value in one more.
const MaxDepth = 9999

// Depth returns how deeply v nests objects and arrays, outside strings:
// the reason json.Valid gives none for.
func Depth(v []byte) int {
	d, deepest := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			d++
			deepest = max(deepest, d)
		case '}', ']':
			d--
		}
	}
	return deepest
}

// Storable finds what jsonb still refuses or changes in valid JSON v: the
// escape \u0000, a lone UTF-16 surrogate, a number beyond numeric's range,
// nesting deeper than MaxDepth, and a key twice in one object (jsonb keeps
// the last, while the cache would hold both, so reads would differ).
func Storable(v []byte) error {
	var fbuf [16]frame
	var kbuf [32]key
	open, keys := fbuf[:0], kbuf[:0]
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '{' || c == '[':
			if len(open) == MaxDepth {
				return fmt.Errorf("nested %d levels deep or more, at most %d", MaxDepth+1, MaxDepth)
			}
			open = append(open, frame{object: c == '{', first: len(keys)})
		case c == '}' || c == ']':
			keys = keys[:open[len(open)-1].first]
			open = open[:len(open)-1]
		case c == '"':
			end, err := stringEnd(v, i+1)
			if err != nil {
				return err
			}
			if f := &open[len(open)-1]; f.object && isKey(v, end+1) {
				k := newKey(v[i : end+1])
				if f.has(keys[f.first:], k) {
					return fmt.Errorf("the key %q appears twice in one object", k.text())
				}
				keys = append(keys, k)
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			end, err := numberEnd(v, i)
			if err != nil {
				return err
			}
			i = end - 1
		}
	}
	return nil
}

// frame is an object or array open around the scanner; the keys of an
// object are keys[first:] of storable's list.
type frame struct {
	object bool
	first  int
	// seen holds the keys of a large object, so it is checked in linear time.
	seen map[string]struct{}
}

// has reports whether k is among the object's keys so far, and notes it.
func (f *frame) has(keys []key, k key) bool {
	if f.seen == nil && len(keys) < 16 {
		return slices.ContainsFunc(keys, k.equal)
	}
	if f.seen == nil {
		f.seen = make(map[string]struct{}, 2*len(keys))
		for _, o := range keys {
			f.seen[o.text()] = struct{}{}
		}
	}
	n := len(f.seen)
	f.seen[k.text()] = struct{}{}
	return len(f.seen) == n // k was there already
}

// key is an object key: its raw bytes, and its decoded text when it holds
// an escape ("\u0061" and "a" are one key).
type key struct {
	raw     []byte
	decoded string
	escaped bool
}

// newKey takes a quoted key from valid JSON.
func newKey(quoted []byte) key {
	k := key{raw: quoted[1 : len(quoted)-1]}
	if bytes.IndexByte(k.raw, '\\') >= 0 {
		var s string
		_ = json.Unmarshal(quoted, &s) // valid JSON: cannot fail
		k.escaped, k.decoded = true, s
	}
	return k
}

func (k key) text() string {
	if k.escaped {
		return k.decoded
	}
	return string(k.raw)
}

func (k key) equal(o key) bool {
	if !k.escaped && !o.escaped {
		return bytes.Equal(k.raw, o.raw)
	}
	return k.text() == o.text()
}

// isKey reports whether the string ending before i is a key: a colon follows.
func isKey(v []byte, i int) bool {
	rest := bytes.TrimLeft(v[i:], " \t\r\n")
	return len(rest) > 0 && rest[0] == ':'
}

// stringEnd checks the escapes of the string from i and returns its end quote.
func stringEnd(v []byte, i int) (int, error) {
	for ; v[i] != '"'; i++ {
		if v[i] != '\\' {
			continue
		}
		i++
		if v[i] != 'u' {
			continue
		}
		code := hex4(v[i+1 : i+5])
		i += 4
		switch {
		case code == 0:
			return 0, errors.New(`the escape \u0000 cannot be stored`)
		case code >= 0xDC00 && code <= 0xDFFF:
			return 0, errors.New("a lone UTF-16 low surrogate cannot be stored")
		case code >= 0xD800 && code <= 0xDBFF:
			if i+6 >= len(v) || v[i+1] != '\\' || v[i+2] != 'u' {
				return 0, errors.New("a lone UTF-16 high surrogate cannot be stored")
			}
			if low := hex4(v[i+3 : i+7]); low < 0xDC00 || low > 0xDFFF {
				return 0, errors.New("a lone UTF-16 high surrogate cannot be stored")
			}
			i += 6
		}
	}
	return i, nil
}

func hex4(b []byte) int {
	n := 0
	for _, c := range b {
		// c is a hex digit (v is valid JSON); c|0x20 lowercases a letter.
		n = n*16 + strings.IndexByte("0123456789abcdef", c|0x20)
	}
	return n
}

// numberEnd checks the number at i fits numeric and returns the index past it.
func numberEnd(v []byte, i int) (int, error) {
	start := i
	if v[i] == '-' {
		i++
	}
	// lead counts the digits from the first nonzero one to the decimal
	// point (3 for 123.4, -2 for 0.001); nonzero says there is one.
	lead, nonzero, fracDigits := 0, false, 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		if nonzero = nonzero || v[i] != '0'; nonzero {
			lead++
		}
	}
	if i < len(v) && v[i] == '.' {
		for i++; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			fracDigits++
			if !nonzero && v[i] != '0' {
				nonzero, lead = true, -fracDigits+1
			}
		}
	}
	exp := 0
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		sign := 1
		if v[i] == '-' {
			sign = -1
		}
		if v[i] == '+' || v[i] == '-' {
			i++
		}
		for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			if exp < 1<<30 {
				exp = exp*10 + int(v[i]-'0')
			}
		}
		exp *= sign
	}
	if fracDigits-exp > maxNumericFracDigits || (nonzero && lead+exp > maxNumericIntDigits) {
		return 0, fmt.Errorf("the number %.40s is beyond PostgreSQL's numeric range", v[start:i])
	}
	return i, nil
}

// String decodes a quoted JSON string exactly: encoding/json alone turns
// invalid UTF-8 and lone UTF-16 surrogates into U+FFFD, so two distinct
// strings could decode as one. It refuses them, and the escape \u0000.
func String(quoted []byte) (string, error) {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", errors.New("not a JSON string")
	}
	if !utf8.Valid(quoted) {
		return "", errors.New("not UTF-8")
	}
	if _, err := stringEnd(quoted, 1); err != nil {
		return "", err
	}
	return s, nil
}
