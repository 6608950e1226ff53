package writebehind

import (
	"reflect"
	"testing"

	"github.com/writebehind/writebehind/internal/readpath"
)

// TestReadStatsCopiesEveryCount: ReadStats has a field for each count of
// the read path, of the same type, and readStats copies every one.
func TestReadStatsCopiesEveryCount(t *testing.T) {
	t.Parallel()
	var in readpath.Stats
	iv := reflect.ValueOf(&in).Elem()
	for i := range iv.NumField() {
		iv.Field(i).SetInt(int64(i + 1))
	}
	out := reflect.ValueOf(readStats(in))
	if out.NumField() != iv.NumField() {
		t.Fatalf("ReadStats has %d fields, the read path's counts %d", out.NumField(), iv.NumField())
	}
	for i := range iv.NumField() {
		name := iv.Type().Field(i).Name
		f := out.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("ReadStats has no field %s", name)
			continue
		}
		if f.Type() != iv.Field(i).Type() {
			t.Errorf("ReadStats.%s is a %s, the read path's a %s", name, f.Type(), iv.Field(i).Type())
			continue
		}
		if f.Int() != iv.Field(i).Int() {
			t.Errorf("ReadStats.%s = %d, want %d", name, f.Int(), iv.Field(i).Int())
		}
	}
}
