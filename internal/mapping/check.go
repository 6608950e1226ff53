package mapping

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckID says why id names no key of the entity: a number of parts other
// than its key columns, or a broken escape. The values' types are the
// catalog's, checked when the op is flushed.
func (e *Entity) CheckID(id string) error {
	_, err := SplitKey(id, len(e.Key))
	return err
}

// CheckDocument says why a document (a JSON object) can never be written to
// the entity's table, as far as the mapping tells without the catalog: a
// field no column or child table takes, a child field that is not an array
// of objects, an element field no child column takes (with columns omitted,
// only children are checked). It returns the document decoded, so the caller
// need not decode it again; nil for an entity held whole in one column.
func (e *Entity) CheckDocument(data []byte) (map[string]any, error) {
	if e.Document != "" {
		return nil, nil
	}
	doc, err := Decode(data)
	if err != nil {
		return nil, err
	}
	for _, f := range slices.Sorted(maps.Keys(doc)) {
		c, isChild := e.Children[f]
		if _, isColumn := e.Columns[f]; !isChild && !isColumn && e.Columns != nil {
			return nil, fmt.Errorf("field %s is not mapped to a column of %s (mapped: %s)", f, e.Table.Sanitize(), strings.Join(append(e.Fields(), e.ChildFields()...), ", "))
		}
		if isChild {
			if err := c.check(doc[f]); err != nil {
				return nil, fmt.Errorf("field %s (child table %s): %w", f, c.Table.Sanitize(), err)
			}
		}
	}
	return doc, nil
}

func (c *Child) check(v any) error {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s is %s, want an array of objects", describe(v), kindOf(v))
	}
	for i, el := range list {
		obj, ok := el.(map[string]any)
		if !ok {
			return fmt.Errorf("element %d is %s, want an object", i, kindOf(el))
		}
		if c.Columns == nil {
			continue
		}
		for _, f := range slices.Sorted(maps.Keys(obj)) {
			if _, ok := c.Columns[f]; !ok {
				return fmt.Errorf("element %d: field %s is not mapped to a column (mapped: %s)", i, f, strings.Join(c.Fields(), ", "))
			}
		}
	}
	return nil
}
