package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type is a column's type as the catalog describes it.
type Type struct {
	// Name is the type as format_type prints it, for messages and casts:
	// "numeric(10,2)", "character varying(20)[]".
	Name string
	// Base is the pg_type.typname of the type, or of an array's elements.
	Base string
	// Array is set for an array type.
	Array bool
	// MaxLen is the n of varchar(n) or char(n), in characters; 0: no limit.
	MaxLen int
	// NotNull is set for a column that refuses NULL, default or not: a
	// value written there is never replaced by the default.
	NotNull bool
}

// supported maps the base types values convert to, to what they take in JSON.
var supported = map[string]string{
	"text": "a string", "varchar": "a string", "bpchar": "a string",
	"int2": "a whole number", "int4": "a whole number", "int8": "a whole number",
	"numeric": "a number", "float4": "a number", "float8": "a number",
	"bool":        "true or false",
	"timestamptz": "an RFC 3339 time", "timestamp": "an RFC 3339 time", "date": "a date (2006-01-02)",
	"uuid": "a UUID string",
	"json": "any JSON value", "jsonb": "any JSON value",
}

// keyBases are the types a key column may have: their text form is
// canonical, so an id names one row and reads back unchanged.
var keyBases = map[string]bool{"text": true, "varchar": true, "int2": true, "int4": true, "int8": true, "uuid": true, "date": true}

// Supported says why values cannot be converted to t; nil when they can.
func (t Type) Supported() error {
	if _, ok := supported[t.Base]; !ok {
		return fmt.Errorf("type %s is not supported (text, varchar, char, smallint, integer, bigint, numeric, real, double precision, boolean, timestamptz, timestamp, date, uuid, json, jsonb and arrays of these)", t.Name)
	}
	return nil
}

// KeySupported says why t cannot be a key column's type; nil when it can.
func (t Type) KeySupported() error {
	if t.Array || !keyBases[t.Base] {
		return fmt.Errorf("type %s cannot be a key column (text, varchar, smallint, integer, bigint, uuid or date)", t.Name)
	}
	return nil
}

// Decode reads a JSON document, numbers as json.Number so no digit is lost.
func Decode(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("not a JSON object: null")
	}
	return doc, nil
}

// Convert returns the text form PostgreSQL reads v (as Decode returns it) as
// a value of t, or null for SQL NULL (v nil: a JSON null or a missing field;
// an error for a NOT NULL column), or why v cannot be one.
func Convert(t Type, v any) (text string, null bool, err error) {
	if v == nil && t.NotNull {
		return "", true, errors.New("missing or null, but the column is NOT NULL")
	}
	if v == nil {
		return "", true, nil
	}
	if !t.Array {
		s, err := scalar(t, v)
		return s, false, err
	}
	list, ok := v.([]any)
	if !ok {
		return "", false, fmt.Errorf("%s is %s, want an array", describe(v), kindOf(v))
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		if e == nil {
			b.WriteString("NULL")
			continue
		}
		if _, nested := e.([]any); nested && t.Base != "json" && t.Base != "jsonb" {
			return "", false, fmt.Errorf("element %d is an array: nested arrays are not supported", i)
		}
		s, err := scalar(t, e)
		if err != nil {
			return "", false, fmt.Errorf("element %d: %w", i, err)
		}
		b.WriteByte('"')
		b.WriteString(arrayEscaper.Replace(s))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), false, nil
}

var arrayEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

var uuidForm = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// takes maps the base types whose values are of one JSON kind to that kind,
// as kindOf names it; json, jsonb and numeric take more than one.
var takes = map[string]string{
	"text": "a string", "varchar": "a string", "bpchar": "a string",
	"timestamptz": "a string", "timestamp": "a string", "date": "a string", "uuid": "a string",
	"int2": "a number", "int4": "a number", "int8": "a number", "float4": "a number", "float8": "a number",
	"bool": "a boolean",
}

// intBits are the sizes of the integer kinds.
var intBits = map[string]int{"int2": 16, "int4": 32, "int8": 64}

func scalar(t Type, v any) (string, error) {
	wrong := func() (string, error) {
		return "", fmt.Errorf("%s is %s, want %s", describe(v), kindOf(v), supported[t.Base])
	}
	if k := takes[t.Base]; k != "" && kindOf(v) != k {
		return wrong()
	}
	switch t.Base {
	case "json", "jsonb":
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		// PostgreSQL's json types hold no NUL character.
		if bytes.Contains(b, []byte(`\u0000`)) {
			return "", fmt.Errorf("holds a NUL character, which PostgreSQL cannot store")
		}
		return string(b), nil
	case "text", "varchar", "bpchar":
		s := v.(string)
		if strings.IndexByte(s, 0) >= 0 {
			return "", fmt.Errorf("holds a NUL character, which PostgreSQL cannot store")
		}
		if n := utf8.RuneCountInString(s); t.MaxLen > 0 && n > t.MaxLen {
			return "", fmt.Errorf("%d characters, %s holds at most %d", n, t.Name, t.MaxLen)
		}
		return s, nil
	case "int2", "int4", "int8":
		n := v.(json.Number)
		i, err := strconv.ParseInt(n.String(), 10, intBits[t.Base])
		if err != nil {
			return "", fmt.Errorf("%s is not a whole number that %s holds", n, t.Name)
		}
		return strconv.FormatInt(i, 10), nil
	case "numeric":
		if n, ok := v.(json.Number); ok {
			return n.String(), nil
		}
		s, ok := v.(string)
		if !ok {
			return wrong()
		}
		// Decimals are often sent as strings to keep every digit.
		if _, ok := new(big.Float).SetString(s); !ok || !jsonNumber.MatchString(s) {
			return "", fmt.Errorf("%q is not a decimal number", s)
		}
		return s, nil
	case "float4", "float8":
		n := v.(json.Number)
		bits := 64
		if t.Base == "float4" {
			bits = 32
		}
		if _, err := strconv.ParseFloat(n.String(), bits); err != nil {
			return "", fmt.Errorf("%s is out of the range of %s", n, t.Name)
		}
		return n.String(), nil
	case "bool":
		return strconv.FormatBool(v.(bool)), nil
	case "timestamptz":
		s := v.(string)
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return "", fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		return tm.UTC().Format(time.RFC3339Nano), nil
	case "timestamp":
		s := v.(string)
		tm, err := time.Parse("2006-01-02T15:04:05.999999999", s)
		if err != nil {
			if tm, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return "", fmt.Errorf("%q is not an RFC 3339 time", s)
			}
			tm = tm.UTC()
		}
		return tm.Format("2006-01-02T15:04:05.999999999"), nil
	case "date":
		s := v.(string)
		tm, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return "", fmt.Errorf("%q is not a date (2006-01-02)", s)
		}
		return tm.Format(time.DateOnly), nil
	case "uuid":
		s := v.(string)
		if !uuidForm.MatchString(s) {
			return "", fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
		}
		return strings.ToLower(s), nil
	}
	return "", t.Supported()
}

// jsonNumber is the syntax of a JSON number.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// KeyValue returns the text form of s, a part of an id, as a value of the key
// column's type t; an error if s is not canonical (two ids would name a row).
func KeyValue(t Type, s string) (string, error) {
	var v any = s
	if intBits[t.Base] > 0 {
		v = json.Number(s)
	}
	got, err := scalar(t, v)
	if err != nil {
		return "", err
	}
	if got != s {
		return "", fmt.Errorf("%q is not in canonical form, %q", s, got)
	}
	return got, nil
}

// kindOf names the JSON kind of v.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// describe shows v short, for messages.
func describe(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		return string(b[:37]) + "..."
	}
	return string(b)
}
