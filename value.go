package writebehind

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// PostgreSQL's numeric, which jsonb stores numbers in, holds at most this
// many digits before the decimal point and after it.
const (
	maxNumericIntDigits  = 131072
	maxNumericFracDigits = 16383
)

// checkValue accepts a JSON object that PostgreSQL's jsonb can store. A
// value jsonb rejects would be acknowledged now and dead-lettered at its
// flush: it is refused here instead, with the reason.
func checkValue(v []byte, maxBytes int) error {
	if len(v) > maxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrValueTooLarge, len(v), maxBytes)
	}
	trimmed := bytes.TrimLeft(v, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(v) {
		return ErrInvalidValue
	}
	if !utf8.Valid(v) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidValue)
	}
	if err := storable(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return nil
}

// storable finds what valid JSON jsonb still refuses: the escape \u0000, a
// lone UTF-16 surrogate, a number beyond numeric's range. (Nesting is no
// issue: json.Valid stops at depth 10000, which jsonb parses.) v must be
// valid JSON.
func storable(v []byte) error {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			end, err := stringEnd(v, i+1)
			if err != nil {
				return err
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

// stringEnd checks the escapes of the string whose content starts at i and
// returns the index of its closing quote.
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
		switch {
		case c >= '0' && c <= '9':
			n = n*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n*16 + int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			n = n*16 + int(c-'A') + 10
		}
	}
	return n
}

// numberEnd checks that the number starting at i fits PostgreSQL's numeric
// and returns the index just past it.
func numberEnd(v []byte, i int) (int, error) {
	start := i
	if v[i] == '-' {
		i++
	}
	// lead counts the digits from the first nonzero one to the decimal
	// point (3 for 123.4, -2 for 0.001); nonzero says there is one.
	lead, nonzero, intDigits, fracDigits := 0, false, 0, 0
	firstNonzero := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		intDigits++
		if !nonzero && v[i] != '0' {
			nonzero, firstNonzero = true, intDigits
		}
	}
	if nonzero {
		lead = intDigits - firstNonzero + 1
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
		if v[i] == '+' || v[i] == '-' {
			if v[i] == '-' {
				sign = -1
			}
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
