package main

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// The YAML configs of sim and server are checked against their Go structs before they are
// decoded: keys are snake_case (the yaml tags), a dashed spelling (metrics-listen) is
// accepted as an alias, and an unknown key is an error that names the key, the closest
// valid key of its section and every key the section takes.

// normalizeKeys returns doc with every key spelt as t's yaml tags spell it (dashes read as
// underscores), or an error naming the first unknown key (in sorted order) with a "did you
// mean" and the keys of its section. Values of leaf keys (numbers, lists, maps) are kept as
// they are.
func normalizeKeys(doc map[string]any, t reflect.Type, prefix string) (map[string]any, error) {
	fields := sectionFields(t)
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(doc))
	for _, k := range keys {
		name := strings.ReplaceAll(strings.ToLower(k), "-", "_")
		ft, ok := fields[name]
		if !ok {
			return nil, unknownKeyError(prefix+k, fields)
		}
		v := doc[k]
		if sub, isMap := v.(map[string]any); isMap && isSection(ft) {
			n, err := normalizeKeys(sub, sectionType(ft), prefix+name+".")
			if err != nil {
				return nil, err
			}
			v = n
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("key %s%s is given twice (as %s and another spelling); keep one", prefix, name, k)
		}
		out[name] = v
	}
	return out, nil
}

// sectionFields maps the yaml keys of struct t to their field types.
func sectionFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, f := range yamlFields(t) {
		out[f.key] = f.Type
	}
	return out
}

// keyedField is a field of a config struct with its yaml key and the struct that declares
// it (an embedded section's type for its fields).
type keyedField struct {
	reflect.StructField
	key   string
	owner reflect.Type
}

// yamlFields lists the fields of struct t that have a yaml key, in order; the fields of an
// embedded section count as t's own.
func yamlFields(t reflect.Type) []keyedField {
	var out []keyedField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			if f.Anonymous && isSection(f.Type) {
				out = append(out, yamlFields(sectionType(f.Type))...)
			}
			continue
		}
		out = append(out, keyedField{f, name, t})
	}
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// isSection says a field of type t is a nested section (a struct, or a pointer to one for
// an optional section) rather than a value.
func isSection(t reflect.Type) bool {
	t = sectionType(t)
	return t.Kind() == reflect.Struct && t != durationType && t != reflect.TypeOf(time.Time{})
}

func sectionType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// unknownKeyError says key is not one of fields, suggesting the closest.
func unknownKeyError(key string, fields map[string]reflect.Type) error {
	parent, last := "", key
	if i := strings.LastIndex(key, "."); i >= 0 {
		parent, last = key[:i], key[i+1:]
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	where := "the top level takes"
	if parent != "" {
		where = parent + " takes"
	}
	msg := "unknown key " + key
	if m := closest(strings.ReplaceAll(strings.ToLower(last), "-", "_"), names); m != "" {
		if parent != "" {
			m = parent + "." + m
		}
		msg += " (did you mean " + m + "?)"
	}
	return fmt.Errorf("%s: %s %s", msg, where, strings.Join(names, ", "))
}

// closest returns the name nearest to s in edit distance, if near enough to be a slip
// (at most a third of its length, and at least 2, edits away), else "".
func closest(s string, names []string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := editDistance(s, n)
		if strings.HasPrefix(n, s) || strings.HasPrefix(s, n) {
			d = min(d, 2) // learning_rate ~ lr is too far; lr_ ~ lr or epoch ~ epochs is not
		}
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (insertions, deletions and
// substitutions of bytes each cost 1).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
