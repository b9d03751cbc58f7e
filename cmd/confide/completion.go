package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// flagValues are the values shell completion offers for the flags of these names, in
// every command that has one ("value\tdescription", as cobra's completion takes them). A
// flag whose values depend on the command is keyed "COMMAND PATH --flag".
var flagValues = map[string][]string{
	"dataset": {"mnist\tMNIST digits", "fashion-mnist\tFashion-MNIST", "shakespeare\tnext character of Shakespeare's plays, a client per speaker",
		"spam\tSpamAssassin e-mails, a client per mailbox"},
	"confide client --dataset": {"mnist\tMNIST digits", "fashion-mnist\tFashion-MNIST"},
	"model":                    {model.TypeMLP, model.TypeCNN, model.TypeRNN, model.TypeLSTM, model.TypeGRU, model.TypeTransformer},
	"transport": {sim.TransportMemory + "\tvirtual time, in memory", sim.TransportGRPC + "\tthe gRPC service over an in-process connection",
		sim.TransportGRPCTCP + "\tthe gRPC service over loopback TCP"},
	"partition": {"iid", "dirichlet:0.5\tlabel skew, Dirichlet(α)", "shards:2\tK label shards a client",
		"natural\ta client per group (speaker, mailbox)", "sample:1000\tN examples drawn for each client"},
	"confide client --partition": {"iid", "dirichlet:0.5\tlabel skew, Dirichlet(α)", "shards:2\tK label shards a client"},
	"optimizer":                  {"sgd", "adam", "adamw"},
	"precision":                  {"float32\tfaster layer math", "float64\tthe reference (gradient checks)"},
	"schedule":                   {"constant", "cosine"},
	"accountant":                 {accountant.MethodRDP.String() + "\tRényi DP", accountant.MethodPRV.String() + "\tprivacy loss random variables (tighter)"},
	"activation":                 {"relu", "gelu", "tanh", "sigmoid"},
	"positional":                 {"learned", "sinusoidal"},
	"split":                      {"test", "train"},
	"output":                     {"text", "json"},
	"log-level":                  {"debug", "info", "warn", "error"},
	"log-format":                 {"text", "json"},
}

// fileFlags take a file, not one of flagValues: completion offers the values and then
// falls back to the shell's file completion (a dataset spec, FILE.yaml).
var fileFlags = map[string]bool{"dataset": true}

// registerCompletions registers the completion of flagValues for every flag of the tree
// below root that has one. Persistent flags are registered once, on root.
func registerCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		flags := c.LocalNonPersistentFlags()
		if c == root {
			flags = c.PersistentFlags()
		}
		flags.VisitAll(func(f *pflag.Flag) {
			values, ok := flagValues[c.CommandPath()+" --"+f.Name]
			if !ok {
				values, ok = flagValues[f.Name]
			}
			if !ok {
				return
			}
			file := fileFlags[f.Name]
			// Registering twice is an error; the tree is built once per process.
			_ = c.RegisterFlagCompletionFunc(f.Name, func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
				var out []string
				for _, v := range values {
					if strings.HasPrefix(v, prefix) {
						out = append(out, v)
					}
				}
				if file && len(out) == 0 {
					return nil, cobra.ShellCompDirectiveDefault // a spec file
				}
				return out, cobra.ShellCompDirectiveNoFileComp
			})
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}
