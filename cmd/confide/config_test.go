package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// sampleEnv is a value for a key of type t that differs from def (the value the key has
// without the variable), and the value the key must then hold.
func sampleEnv(t *testing.T, typ reflect.Type, def reflect.Value) (string, any) {
	t.Helper()
	st := sectionType(typ)
	switch st {
	case durationType:
		return "7s", 7 * time.Second
	case reflect.TypeOf(data.Schema{}): // a file name
		p := writeFile(t, "spec.yaml", "name: houses\nformat: csv\npath: houses.csv\nlabel: {column: band}\ncolumns:\n  - {name: rooms}\n")
		return p, nil // checked for non-nil below
	case reflect.TypeOf(model.Mask{}):
		return "{params: 8, pruned: 1, bits: AQ==}", nil
	case reflect.TypeOf([]model.ConvSpec{}):
		return "[{filters: 4, kernel: 3}]", []model.ConvSpec{{Filters: 4, Kernel: 3}}
	case reflect.TypeOf([]model.EmbeddingSpec{}):
		return "[{column: 2, categories: 5, dim: 3}]", []model.EmbeddingSpec{{Column: 2, Categories: 5, Dim: 3}}
	}
	switch st.Kind() {
	case reflect.Bool:
		b := !(def.Kind() == reflect.Bool && def.Bool()) && !(def.Kind() == reflect.Pointer && !def.IsNil() && def.Elem().Bool())
		return fmt.Sprint(b), b
	case reflect.Int, reflect.Int64:
		return "7", int64(7)
	case reflect.Uint64, reflect.Uint, reflect.Uint32:
		return "7", uint64(7)
	case reflect.Float64:
		return "0.375", 0.375
	case reflect.String:
		return "x7", "x7"
	case reflect.Slice:
		switch st.Elem().Kind() {
		case reflect.Int:
			return "3,4", []int{3, 4}
		case reflect.Float64:
			return "0.5, 1.5", []float64{0.5, 1.5}
		case reflect.String:
			return "a,b", []string{"a", "b"}
		}
	}
	t.Fatalf("no sample value for type %s: teach sampleEnv it", typ)
	return "", nil
}

// fieldAt is the value of the dotted key in the config struct v.
func fieldAt(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}
			}
			v = v.Elem()
		}
		v = fieldByKey(v, part)
		if !v.IsValid() {
			return v
		}
	}
	return v
}

func fieldByKey(v reflect.Value, key string) reflect.Value {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == key:
			return v.Field(i)
		case name == "" && f.Anonymous:
			if w := fieldByKey(v.Field(i), key); w.IsValid() {
				return w
			}
		}
	}
	return reflect.Value{}
}

// equalSample compares a field with the sample it was set to.
func equalSample(got reflect.Value, want any) bool {
	for got.Kind() == reflect.Pointer {
		if got.IsNil() {
			return false
		}
		if want == nil {
			return true // a schema read from its file, a mask
		}
		got = got.Elem()
	}
	switch w := want.(type) {
	case int64:
		return got.CanInt() && got.Int() == w
	case uint64:
		return got.CanUint() && got.Uint() == w
	case time.Duration:
		return got.Interface() == w
	}
	return reflect.DeepEqual(got.Interface(), want)
}

// Every key of the sim's and the server's configs can be set from its CONFIDE_ variable:
// the table is every leaf key of the structs.
func TestEveryStructKeyFromTheEnvironment(t *testing.T) {
	bare := writeFile(t, "bare.yaml", "{}\n")
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		load func() (reflect.Value, error)
	}{
		{"sim", reflect.TypeOf(sim.Config{}), func() (reflect.Value, error) { c, err := loadSimConfig(bare); return reflect.ValueOf(c), err }},
		{"server", reflect.TypeOf(serverFile{}), func() (reflect.Value, error) { c, err := readServerFile(bare); return reflect.ValueOf(c), err }},
	} {
		keys := structKeys(tc.typ, "")
		if len(keys) < 20 {
			t.Fatalf("%s: only %d keys found", tc.name, len(keys))
		}
		def, err := tc.load()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			t.Run(tc.name+"/"+k.name, func(t *testing.T) {
				s, want := sampleEnv(t, k.typ, fieldAt(def, k.name))
				t.Setenv(envVar(k.name), s)
				c, err := tc.load()
				if err != nil {
					t.Fatalf("%s=%s: %v", envVar(k.name), s, err)
				}
				if got := fieldAt(c, k.name); !got.IsValid() || !equalSample(got, want) {
					t.Fatalf("%s=%s: %s = %v, want %v", envVar(k.name), s, k.name, got, want)
				}
			})
		}
	}
}

// Every flag of every command (client, train, …; sim and server too) can be set from its
// CONFIDE_ variable, and from a config file under its snake_case key.
func TestEveryFlagKeyFromTheEnvironmentAndTheFile(t *testing.T) {
	flagSamples := map[string]string{"int": "7", "uint64": "7", "float64": "0.375", "string": "x7", "duration": "7s",
		"stringSlice": "[a,b]", "intSlice": "[3,4]", "float64Slice": "[0.5,1.5]", "uint": "7", "int64": "7", "count": "7", "precision": "float64"}
	n := 0
	for _, c := range allCommands(newRootCmd()) {
		path := c.CommandPath()
		if err := c.ParseFlags(nil); err != nil {
			t.Fatal(err)
		}
		for _, k := range flagKeys(c.Flags()) {
			n++
			t.Run(strings.ReplaceAll(path, " ", "_")+"/"+k.name, func(t *testing.T) {
				for _, fromFile := range []bool{false, true} {
					cmd := findCommand(t, path)
					f := cmd.Flags().Lookup(strings.ReplaceAll(k.name, "_", "-"))
					typ := f.Value.Type()
					s, ok := flagSamples[typ]
					if typ == "bool" {
						s, ok = fmt.Sprint(f.DefValue != "true"), true
					}
					if !ok {
						t.Fatalf("--%s: no sample for flag type %s", f.Name, typ)
					}
					g := &globalOptions{output: "text", logLevel: "error", logFormat: "text"}
					if fromFile {
						if _, structured := structuredConfigs[path]; structured {
							continue // their files are the structs, tested above
						}
						g.configFile = writeFile(t, "c.yaml", k.name+": "+s+"\n")
					} else {
						t.Setenv(envVar(k.name), strings.Trim(s, "[]"))
					}
					if err := g.apply(cmd); err != nil {
						t.Fatalf("from file %v: %v", fromFile, err)
					}
					if got := f.Value.String(); got != s {
						t.Fatalf("from file %v: --%s = %q, want %q", fromFile, f.Name, got, s)
					}
					os.Unsetenv(envVar(k.name))
				}
			})
		}
	}
	if n < 100 {
		t.Fatalf("only %d flags found", n)
	}
}

// findCommand builds a fresh command tree and returns the command at path with its flags
// parsed from nothing.
func findCommand(t *testing.T, path string) *cobra.Command {
	t.Helper()
	root := newRootCmd()
	cmd, _, err := root.Find(strings.Fields(path)[1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// No environment variable sets two different things of one command: a flag and a struct
// key share a variable only when the flag is that key.
func TestEnvironmentNamesAreUnambiguous(t *testing.T) {
	for path := range structuredConfigs {
		cmd := findCommand(t, path)
		seen := map[string]string{}
		for _, k := range commandKeys(cmd) {
			n := envVar(k.name)
			if prev, ok := seen[n]; ok && prev != k.name {
				t.Errorf("%s: %s sets both %s and %s", path, n, prev, k.name)
			}
			seen[n] = k.name
		}
	}
}

// A CONFIDE_ variable that sets nothing of the command is warned about, with the closest
// one that would.
func TestUnknownEnvironmentVariablesAreWarned(t *testing.T) {
	for _, tc := range []struct {
		path, env, want string
	}{
		{"confide sim", "CONFIDE_EPOCS", "CONFIDE_EPOCS sets nothing of 'confide sim' and is ignored (did you mean CONFIDE_TRAINING_EPOCHS?)"},
		{"confide sim", "CONFIDE_DP_NOISE_MULTIPLEIR", "(did you mean CONFIDE_DP_NOISE_MULTIPLIER?)"},
		{"confide server", "CONFIDE_METRICS_LISTN", "(did you mean CONFIDE_METRICS_LISTEN?)"},
		{"confide client", "CONFIDE_NUM_CLIENT", "(did you mean CONFIDE_NUM_CLIENTS?)"},
		{"confide client", "CONFIDE_ZZZZZZZZ", "CONFIDE_ZZZZZZZZ sets nothing of 'confide client' and is ignored; see"},
	} {
		var buf bytes.Buffer
		old := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
		warnUnknownEnv(findCommand(t, tc.path), []string{tc.env + "=1", "CONFIDE_CONFIG=x", "CONFIDE_LOG_LEVEL=info", "CONFIDE_EMPTY=", "HOME=/"})
		slog.SetDefault(old)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%s %s: log %q, want %q", tc.path, tc.env, buf.String(), tc.want)
		}
		if strings.Count(buf.String(), "WARN") != 1 {
			t.Errorf("%s %s: log %q, want one warning (known variables are not warned about)", tc.path, tc.env, buf.String())
		}
	}
}

// A bad value from the environment names the variable, the key and the type.
func TestBadEnvironmentValueIsNamed(t *testing.T) {
	t.Setenv("CONFIDE_DP_NOISE_MULTIPLIER", "lots")
	_, err := loadSimConfig(writeFile(t, "c.yaml", "{}\n"))
	if err == nil || !strings.Contains(err.Error(), `CONFIDE_DP_NOISE_MULTIPLIER="lots" (key dp.noise_multiplier): not a value of type number`) {
		t.Fatalf("error %v, want one naming the variable, its key and type", err)
	}
}

// TestSimFlagsDoNotShadowSections: a flag named like a section (dataset, model, dp, …)
// would read its CONFIDE_ variable and its config key as a value.
func TestSimFlagsDoNotShadowSections(t *testing.T) {
	for path, typ := range structuredConfigs {
		cmd := findCommand(t, path)
		for _, k := range structKeys(typ, "") {
			section, _, nested := strings.Cut(k.name, ".")
			if nested && cmd.Flags().Lookup(section) != nil {
				t.Fatalf("%s: flag --%s shadows the config section %s", path, section, section)
			}
		}
	}
}

// memory_limit_mb (and --memory-limit-mb, CONFIDE_MEMORY_LIMIT_MB) sets the server's soft
// memory limit before anything else starts; GOMEMLIMIT in the environment takes precedence,
// and a negative value is refused by name.
func TestServerMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	// The server refuses to start without TLS or --insecure after it has set the limit.
	start := func(t *testing.T, yaml string, args ...string) error {
		t.Helper()
		debug.SetMemoryLimit(before)
		cfg := writeFile(t, "server.yaml", yaml+"federation:\n  rounds: 1\n")
		_, err := runConfide(t, append([]string{"server", "--config", cfg, "--listen", "127.0.0.1:0"}, args...)...)
		return err
	}
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	for _, tc := range []struct {
		name, yaml, env string
		args            []string
		want            int64
	}{
		{name: "file", yaml: "memory_limit_mb: 1536\n", want: 1536 << 20},
		{name: "flag", args: []string{"--memory-limit-mb", "1200"}, want: 1200 << 20},
		{name: "flag over file", yaml: "memory_limit_mb: 1536\n", args: []string{"--memory-limit-mb", "1200"}, want: 1200 << 20},
		{name: "environment", env: "CONFIDE_MEMORY_LIMIT_MB", want: 1024 << 20},
		{name: "none", want: before},
		{name: "GOMEMLIMIT wins", yaml: "memory_limit_mb: 1536\n", env: "GOMEMLIMIT", want: before},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, "1024")
			}
			if err := start(t, tc.yaml, tc.args...); err == nil || !strings.Contains(err.Error(), "--insecure") {
				t.Fatalf("err = %v, want the server to ask for TLS", err)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Fatalf("memory limit %d MiB, want %d MiB", got>>20, tc.want>>20)
			}
		})
	}
	err := start(t, "memory_limit_mb: -5\n")
	if err == nil || !strings.Contains(err.Error(), "memory_limit_mb = -5") || !strings.Contains(err.Error(), "memory_limit_mb: 1536") {
		t.Fatalf("err = %v, want memory_limit_mb refused with an example", err)
	}
}
