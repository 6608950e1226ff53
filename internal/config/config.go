// Package config reads configurations from WB_ environment variables and
// holds the rules that more than one component's configuration applies.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// ErrInvalid is exported by the root package as ErrInvalidConfig, hence its
// prefix.
var ErrInvalid = errors.New("writebehind: invalid configuration")

// Bad is the error of WB_name breaking rule with the value got.
func Bad(name, rule string, got any) error {
	return fmt.Errorf("%w: WB_%s: %s, got %v", ErrInvalid, name, rule, got)
}

// First returns the first error of errs that is not nil.
func First(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Defaults returns a T with every field at its default.
func Defaults[T any]() T {
	var c T
	// With no WB_ variables set, Process only applies the defaults; it
	// cannot fail on them.
	if err := envconfig.Process("WB_DEFAULTS_ONLY_", &c); err != nil {
		panic(err)
	}
	return c
}

// WithDefaults returns c with its zero fields, and those of the structs it
// embeds, set to their defaults, but for the fields named in keep (their
// zero means something) and those tagged nodefaultwith:"OTHER" while the
// field of OTHER is set.
func WithDefaults[T any](c T, keep ...string) T {
	given, d := reflect.ValueOf(c), reflect.ValueOf(Defaults[T]())
	v := reflect.ValueOf(&c).Elem()
	fs := fields(v.Type())
	set := func(name string) bool { // whether c came with the field of WB_name set
		if name == "" {
			return false
		}
		i := slices.IndexFunc(fs, func(f reflect.StructField) bool { return f.Tag.Get("envconfig") == name })
		return i >= 0 && !given.FieldByIndex(fs[i].Index).IsZero()
	}
	for _, f := range fs {
		if fv := v.FieldByIndex(f.Index); fv.IsZero() && !slices.Contains(keep, f.Name) && !set(f.Tag.Get("nodefaultwith")) {
			fv.Set(d.FieldByIndex(f.Index))
		}
	}
	return c
}

// fields returns the fields of the struct type t, with those of the structs
// it embeds in their place.
func fields(t reflect.Type) []reflect.StructField {
	return slices.DeleteFunc(reflect.VisibleFields(t), func(f reflect.StructField) bool {
		return f.Anonymous && f.Type.Kind() == reflect.Struct
	})
}

// Load reads a T from WB_ environment variables and validates it.
func Load[T interface{ Validate() error }]() (T, error) {
	var c T
	if err := Read(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Read reads the struct spec points to from WB_ environment variables,
// without validating it. Its errors wrap ErrInvalid and name the variable.
func Read(spec any) error {
	if err := decimalOnly(reflect.TypeOf(spec).Elem()); err != nil {
		return err
	}
	if err := envconfig.Process("WB", spec); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			if le := ListError(""); errors.As(pe.Err, &le) {
				return fmt.Errorf("%w: %s: %v, got %q", ErrInvalid, pe.KeyName, le, pe.Value)
			}
			return fmt.Errorf("%w: %s: expected %s, got %q", ErrInvalid, pe.KeyName, cmp.Or(expected[pe.TypeName], pe.TypeName), pe.Value)
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	dropDefaults(reflect.ValueOf(spec).Elem())
	return nil
}

// dropDefaults zeroes each field tagged nodefaultwith:"OTHER" that the
// environment does not set while it sets WB_OTHER: the field's default is
// for when OTHER is not used (WB_ENTITIES besides WB_ENTITIES_FILE).
func dropDefaults(v reflect.Value) {
	for _, f := range fields(v.Type()) {
		other := f.Tag.Get("nodefaultwith")
		if other == "" {
			continue
		}
		_, set := os.LookupEnv("WB_" + f.Tag.Get("envconfig"))
		if o, _ := os.LookupEnv("WB_" + other); !set && strings.TrimSpace(o) != "" {
			v.FieldByIndex(f.Index).SetZero()
		}
	}
}

// decimal is a whole number as an operator writes one. envconfig would also
// take 010 (octal: 8) and 0x10, so WB_PARTITIONS=010 would quietly mean 8.
var decimal = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)

// decimalOnly checks that every integer variable of rt that is set is
// decimal.
func decimalOnly(rt reflect.Type) error {
	for _, f := range fields(rt) {
		if k := f.Type.Kind(); k != reflect.Int && k != reflect.Int64 || f.Type == reflect.TypeFor[time.Duration]() {
			continue
		}
		name := "WB_" + f.Tag.Get("envconfig")
		if v, ok := os.LookupEnv(name); ok && !decimal.MatchString(strings.TrimSpace(v)) {
			return fmt.Errorf("%w: %s: expected a whole number in decimal, got %q", ErrInvalid, name, v)
		}
	}
	return nil
}

// ListError says why a variable of structure (WB_ENTITIES, WB_ENTITY_TTLS,
// WB_ENTITIES_FILE) does not decode: a name twice, a pair without "=", a
// broken file. It is reported as it is; for the other types the expected
// form is the reason.
type ListError string

func (e ListError) Error() string { return string(e) }

// expected names the form of a variable of each type envconfig reports.
var expected = map[string]string{
	"Duration": "a duration like 500ms, 30s or 5m",
	"int":      "a whole number",
	"int64":    "a whole number",
	"bool":     "true or false",
	"float64":  "a number",
}

// The upper bounds of WB_MAX_ID_BYTES and WB_MAX_VALUE_BYTES: an id or value
// above what PostgreSQL can store would be acknowledged, then dead-lettered.
// A btree index entry holds about 2.7 kB on 8 kB pages.
const (
	maxIDBytesLimit    = 2048
	maxValueBytesLimit = 64 << 20
)

// MaxIDBytes checks WB_MAX_ID_BYTES.
func MaxIDBytes(n int) error {
	if n < 1 || n > maxIDBytesLimit {
		return Bad("MAX_ID_BYTES", fmt.Sprintf("must be between 1 and %d (PostgreSQL's primary key index holds no longer id)", maxIDBytesLimit), n)
	}
	return nil
}

// MaxValueBytes checks WB_MAX_VALUE_BYTES.
func MaxValueBytes(n int) error {
	if n < 2 || n > maxValueBytesLimit {
		return Bad("MAX_VALUE_BYTES", fmt.Sprintf("must be between 2 and %d (jsonb stores at most 255 MiB, in a form that can be larger than the text)", maxValueBytesLimit), n)
	}
	return nil
}

// WholeMillis reports whether d is a whole number of milliseconds: Redis
// TTLs are, and 500µs would round to 0, which means no TTL at all.
func WholeMillis(d time.Duration) bool { return d%time.Millisecond == 0 }
