package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// The one configuration model of confide's commands. A command's settings are either a
// struct whose yaml tags are the keys (sim: sim.Config, server: serverFile; registered in
// structuredConfigs) or the command's flags, whose names with underscores are the keys
// (client, train, …). Either way the same rules hold:
//   - keys are snake_case, a dashed spelling (num-clients) is an alias;
//   - an unknown key is an error naming the closest valid key and every key of its section;
//   - every key can be set from the environment as CONFIDE_<SECTION>_<KEY> (dots and dashes
//     as underscores: dp.noise_multiplier is CONFIDE_DP_NOISE_MULTIPLIER), which wins over
//     the file, and flags win over both;
//   - a CONFIDE_ variable that sets nothing of the command is warned about.

// configKey is one leaf key of a config: its dotted snake_case name and its Go type, and
// where it is documented: the struct field, or the flag.
type configKey struct {
	name  string
	typ   reflect.Type
	field keyedField  // of a struct config
	flag  *pflag.Flag // of a flag config
}

// structuredConfigs maps the commands whose config is a struct to that struct's type. The
// files that define the commands fill it.
var structuredConfigs = map[string]reflect.Type{}

// structKeys lists the leaf keys of the config struct t in field order: nested structs are
// sections, a type that decodes itself from YAML (a dataset schema) is one value.
func structKeys(t reflect.Type, prefix string) []configKey {
	var out []configKey
	for _, f := range yamlFields(t) {
		if isSection(f.Type) && !decodesItself(f.Type) {
			out = append(out, structKeys(sectionType(f.Type), prefix+f.key+".")...)
			continue
		}
		out = append(out, configKey{name: prefix + f.key, typ: f.Type, field: f})
	}
	return out
}

var yamlUnmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// decodesItself says values of type t read themselves from YAML (data.Schema: an inline
// mapping or a file name), so they are one key, not a section.
func decodesItself(t reflect.Type) bool {
	return reflect.PointerTo(sectionType(t)).Implements(yamlUnmarshaler)
}

// flagKeys lists the keys of a command configured by its flags: every flag but --config
// and --help, its name with underscores.
func flagKeys(fs *pflag.FlagSet) []configKey {
	var out []configKey
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" || f.Name == "version" {
			return
		}
		out = append(out, configKey{name: flagKey(f.Name), flag: f})
	})
	return out
}

func flagKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// envVar is the environment variable that sets a key: CONFIDE_DP_NOISE_MULTIPLIER.
func envVar(key string) string {
	return "CONFIDE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// readConfigFile reads a YAML config file into a map with t's spelling of every key (see
// normalizeKeys), so that a misspelt key is named with the keys of its section.
func readConfigFile(path string, t reflect.Type) (map[string]any, error) {
	doc, err := readYAMLMap(path)
	if err != nil {
		return nil, err
	}
	return normalizeKeys(doc, t, "")
}

// readYAMLMap reads a YAML file holding a mapping (or nothing).
func readYAMLMap(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w (fix the YAML)", err)
	}
	return doc, nil
}

// applyEnv sets in doc every key whose CONFIDE_ variable lookup finds non-empty, after
// checking that the value decodes as the key's type.
func applyEnv(doc map[string]any, keys []configKey, lookup func(string) (string, bool)) error {
	for _, k := range keys {
		s, ok := lookup(envVar(k.name))
		if !ok || s == "" {
			continue
		}
		v, err := envValue(s, k.typ)
		if err != nil {
			return fmt.Errorf("%s=%q (key %s): %w", envVar(k.name), s, k.name, err)
		}
		setPath(doc, k.name, v)
	}
	return nil
}

// envValue reads an environment variable's value as a YAML value of type t: a string
// as it is, a list as comma-separated items (or a YAML flow list, [a, b]), anything else
// as a YAML scalar.
func envValue(s string, t reflect.Type) (any, error) {
	var v any
	st := sectionType(t)
	switch {
	case st.Kind() == reflect.String:
		v = s
	case st.Kind() == reflect.Slice && !strings.HasPrefix(strings.TrimSpace(s), "["):
		items := []any{}
		for _, p := range strings.Split(s, ",") {
			var item any = strings.TrimSpace(p)
			if st.Elem().Kind() != reflect.String {
				if err := yaml.Unmarshal([]byte(strings.TrimSpace(p)), &item); err != nil {
					return nil, err
				}
			}
			items = append(items, item)
		}
		v = items
	default:
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, reflect.New(t).Interface()); err != nil {
		return nil, fmt.Errorf("not a value of type %s: %w", typeName(t), err)
	}
	return v, nil
}

// setPath sets the dotted key in doc, creating the sections on the way.
func setPath(doc map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := doc[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			doc[p] = sub
		}
		doc = sub
	}
	doc[parts[len(parts)-1]] = v
}

// loadConfig fills out, a pointer to a config struct holding the defaults, from the YAML
// file at path (none when empty) and then from the environment, strictly: an unknown key
// is an error, and so is a value of the wrong type.
func loadConfig(out any, path string, lookup func(string) (string, bool)) error {
	t := reflect.TypeOf(out).Elem()
	doc := map[string]any{}
	if path != "" {
		var err error
		if doc, err = readConfigFile(path, t); err != nil {
			return err
		}
	}
	if err := applyEnv(doc, structKeys(t, ""), lookup); err != nil {
		return err
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(out)
}

// loadFlagConfig sets every flag of fs that the command line left alone from the
// environment (CONFIDE_<FLAG>) or else from file, the keys of a flag config file; it
// returns the first value a flag refuses.
func loadFlagConfig(fs *pflag.FlagSet, file map[string]any, lookup func(string) (string, bool)) error {
	var ferr error
	fs.VisitAll(func(f *pflag.Flag) {
		if ferr != nil || f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		key := flagKey(f.Name)
		var s, from string
		if env, ok := lookup(envVar(key)); ok && env != "" {
			s, from = env, envVar(key)
		} else if v, ok := file[key]; ok {
			s, from = flagValue(v), "config key "+key
		} else {
			return
		}
		if err := fs.Set(f.Name, s); err != nil {
			ferr = &exitError{code: exitUsage, err: fmt.Errorf("%s = %q: %w (--%s)", from, s, err, f.Name)}
		}
	})
	return ferr
}

// flagValue is a config file's value as a flag's text: lists comma-separated.
func flagValue(v any) string {
	if x, ok := v.([]any); ok {
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// readFlagConfigFile reads the config file of a command configured by its flags: every key
// is a flag's name (underscores or dashes), with a value, not a section.
func readFlagConfigFile(path string, fs *pflag.FlagSet) (map[string]any, error) {
	fields := map[string]reflect.Type{}
	for _, k := range flagKeys(fs) {
		fields[k.name] = reflect.TypeOf("")
	}
	doc, err := readYAMLMap(path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(doc))
	keys := sortedKeys(doc)
	for _, k := range keys {
		name := flagKey(strings.ToLower(k))
		if _, ok := fields[name]; !ok {
			return nil, unknownKeyError(k, fields)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("key %s is given twice (as %s and another spelling); keep one", name, k)
		}
		if _, isMap := doc[k].(map[string]any); isMap {
			return nil, fmt.Errorf("key %s takes a value, not a section", name)
		}
		out[name] = doc[k]
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// commandKeys lists every key of cmd's config: its struct's keys for sim and server, and
// the flags (which come from the environment too) for every command.
func commandKeys(cmd *cobra.Command) []configKey {
	var keys []configKey
	if t, ok := structuredConfigs[cmd.CommandPath()]; ok {
		keys = structKeys(t, "")
	}
	return append(keys, flagKeys(cmd.Flags())...)
}

// warnUnknownEnv warns about every non-empty CONFIDE_ variable of environ that sets nothing
// of cmd, with the closest variable that would.
func warnUnknownEnv(cmd *cobra.Command, environ []string) {
	known := map[string]bool{"CONFIDE_CONFIG": true}
	var names []string
	for _, k := range commandKeys(cmd) {
		n := envVar(k.name)
		if !known[n] {
			known[n] = true
			names = append(names, n)
		}
	}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "CONFIDE_") || known[name] || val == "" {
			continue
		}
		msg := name + " sets nothing of '" + cmd.CommandPath() + "' and is ignored"
		if m := closestEnv(name, names); m != "" {
			msg += " (did you mean " + m + "?)"
		}
		slog.Warn(msg + "; see 'confide config reference'")
	}
}

// closestEnv is the variable of names nearest to name, comparing the whole names and the
// keys' last parts (CONFIDE_EPOCS is near CONFIDE_TRAINING_EPOCHS), or "".
func closestEnv(name string, names []string) string {
	s := strings.ToLower(strings.TrimPrefix(name, "CONFIDE_"))
	byWhole := map[string]string{}
	var cands []string
	for _, n := range names {
		whole := strings.ToLower(strings.TrimPrefix(n, "CONFIDE_"))
		byWhole[whole] = n
		cands = append(cands, whole)
	}
	if m := closest(s, cands); m != "" {
		return byWhole[m]
	}
	// A section left out: match the leaf. Only a unique leaf is a suggestion.
	leaves := map[string][]string{}
	for _, w := range cands {
		for i := range w {
			if w[i] == '_' {
				leaves[w[i+1:]] = append(leaves[w[i+1:]], byWhole[w])
			}
		}
	}
	if m := closest(s, sortedKeys(leaves)); m != "" && len(leaves[m]) == 1 && len(m) > 3 {
		return leaves[m][0]
	}
	return ""
}

// typeName is how the reference names a key's type.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case decodesItself(t):
		return "mapping or file"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer ≥ 0"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Map:
		return "mapping"
	case reflect.Struct:
		return "mapping"
	}
	return t.Kind().String()
}
