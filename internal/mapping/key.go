package mapping

import (
	"fmt"
	"strings"
)

// An id names a row by the values of its key columns, in their text form,
// joined by "/". In each value "%" is written "%25" and "/" is written
// "%2F", and no other escape exists, so every id has one decoding and
// JoinKey(SplitKey(id)) == id.

// JoinKey returns the id of a row with key values parts.
func JoinKey(parts []string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = keyEscaper.Replace(p)
	}
	return strings.Join(esc, "/")
}

var keyEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// SplitKey returns the n key values id names, or why it names none.
func SplitKey(id string, n int) ([]string, error) {
	parts := strings.Split(id, "/")
	if len(parts) != n {
		return nil, fmt.Errorf("id %q has %d parts separated by /, the key has %d columns (write / inside a value as %%2F)", id, len(parts), n)
	}
	for i, p := range parts {
		v, err := unescape(p)
		if err != nil {
			return nil, fmt.Errorf("id %q: %w", id, err)
		}
		parts[i] = v
	}
	return parts, nil
}

func unescape(p string) (string, error) {
	for rest := p; ; {
		_, after, found := strings.Cut(rest, "%")
		if !found {
			return keyUnescaper.Replace(p), nil
		}
		if esc := after[:min(2, len(after))]; esc != "25" && esc != "2F" {
			return "", fmt.Errorf("%q is not an escape: %% is written %%25 and / is written %%2F", "%"+esc)
		}
		rest = after[2:]
	}
}

var keyUnescaper = strings.NewReplacer("%25", "%", "%2F", "/")
