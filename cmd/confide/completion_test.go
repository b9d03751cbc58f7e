package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Shell completion of flag values, through cobra's __complete command as the shells call it:
// the values, then ":DIRECTIVE" (4: no file completion; 0: the shell's default, files).
func TestFlagValueCompletion(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"train", "--model", ""}, []string{"mlp", "cnn", "rnn", "lstm", "gru", "transformer"}, ":4"},
		{[]string{"train", "--dataset", "fa"}, []string{"fashion-mnist\tFashion-MNIST"}, ":4"},
		{[]string{"train", "--dataset", "houses"}, nil, ":0"}, // a spec file: the shell completes files
		{[]string{"client", "--dataset", ""}, []string{"mnist\tMNIST digits", "fashion-mnist\tFashion-MNIST"}, ":4"},
		{[]string{"sim", "--transport", "grpc"}, []string{"grpc\tthe gRPC service over an in-process connection", "grpc-tcp\tthe gRPC service over loopback TCP"}, ":4"},
		{[]string{"sim", "--partition", "d"}, []string{"dirichlet:0.5\tlabel skew, Dirichlet(α)"}, ":4"},
		{[]string{"client", "--partition", ""}, []string{"iid", "dirichlet:0.5\tlabel skew, Dirichlet(α)", "shards:2\tK label shards a client"}, ":4"},
		{[]string{"train", "--optimizer", "adam"}, []string{"adam", "adamw"}, ":4"},
		{[]string{"privacy", "epsilon", "--accountant", ""}, []string{"rdp\tRényi DP", "prv\tprivacy loss random variables (tighter)"}, ":4"},
		{[]string{"model", "evaluate", "--split", ""}, []string{"test", "train"}, ":4"},
		{[]string{"sim", "--log-level", "w"}, []string{"warn"}, ":4"},
		{[]string{"--output", ""}, []string{"text", "json"}, ":4"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runConfide(t, append([]string{"__complete"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			got, directive := lines[:len(lines)-1], lines[len(lines)-1]
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || directive != tc.directive {
				t.Fatalf("completions %q, directive %s; want %q, %s", got, directive, tc.want, tc.directive)
			}
		})
	}
}

// confide config reference completes command paths, a word at a time.
func TestConfigReferenceCompletesCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "reference", "si"}, "sim"},
		{[]string{"config", "reference", "model", "ex"}, "explain export"},
	} {
		out, err := runConfide(t, append([]string{"__complete"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, ":") {
				name, _, _ := strings.Cut(l, "\t")
				names = append(names, name)
			}
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("%v: completions %q, want %s", tc.args, names, tc.want)
		}
	}
}

// Every flag flagValues completes exists in some command, so the table cannot go stale.
func TestCompletedFlagsExist(t *testing.T) {
	seen := map[string]bool{}
	root := newRootCmd()
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { seen[f.Name] = true })
	for _, c := range allCommands(root) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			seen[f.Name] = true
			seen[c.CommandPath()+" --"+f.Name] = true
		})
	}
	for k := range flagValues {
		if !seen[k] {
			t.Errorf("flagValues completes %q, which no command has", k)
		}
	}
}

// allCommands lists the runnable commands of the tree below root.
func allCommands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() {
			out = append(out, c)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}
