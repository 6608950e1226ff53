package writebehind

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/writebehind/writebehind/internal/jsonb"
)

// checkValue accepts a JSON object that PostgreSQL's jsonb can store and
// reads back as it was written. A value jsonb rejects would be acknowledged
// now and dead-lettered at its flush: it is refused here instead, with the
// reason.
func checkValue(v []byte, maxBytes int) error {
	if len(v) > maxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrValueTooLarge, len(v), maxBytes)
	}
	trimmed := bytes.TrimLeft(v, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ErrInvalidValue
	}
	if !json.Valid(v) {
		if d := jsonb.Depth(v); d > jsonb.MaxDepth {
			return fmt.Errorf("%w: nested %d levels deep, at most %d", ErrInvalidValue, d, jsonb.MaxDepth)
		}
		return ErrInvalidValue
	}
	if !utf8.Valid(v) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidValue)
	}
	if err := jsonb.Storable(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return nil
}
