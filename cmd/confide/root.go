package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// globalOptions are the persistent flags shared by every subcommand.
type globalOptions struct {
	configFile string
	output     string // "text" or "json"
	logLevel   string
	logFormat  string // "text" or "json"
}

func newRootCmd() *cobra.Command { return newRootCmdWith(&globalOptions{}) }

// newRootCmdWith builds the command tree around g, which receives the persistent flags (main
// keeps it to report a failed command's error in the chosen log format).
func newRootCmdWith(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:     "confide",
		Version: versionLine(),
		Short:   "Privacy-preserving federated learning: DP-SGD, secure aggregation, simulation",
		Long: `confide trains neural networks centrally or federated across many data owners, with
differentially private SGD and threshold-homomorphic secure aggregation.

Every setting may also come from the config file (--config; snake_case keys, dashed
spellings accepted) or the environment (CONFIDE_<SECTION>_<KEY>, e.g. CONFIDE_NUM_CLIENTS or
CONFIDE_DP_NOISE_MULTIPLIER); flags win over the environment, which wins over the file.
'confide config reference' lists every key of every command.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.apply(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "YAML config file: snake_case keys, the flag names with underscores (e.g. num_clients: 6), or the sections of sim and server configs (see 'confide config reference')")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json (json prints exactly one object on stdout)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format on stderr: text (key=value) or json (one object a line, for log collectors)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())} // a usage error
	})

	root.SetVersionTemplate("{{.Version}}\n") // --version prints what `confide version` does
	root.AddCommand(newVersionCmd(g))
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	registerCompletions(root)
	return root
}

// subcommands is filled by the init functions of the files that define the subcommands,
// so each command lives in its own file without editing this one.
var subcommands []func(*globalOptions) *cobra.Command

func registerCommand(f func(*globalOptions) *cobra.Command) { subcommands = append(subcommands, f) }

// apply loads the config file and the CONFIDE_* environment into every flag of cmd that
// was not set on the command line (the commands with a struct config read their file
// themselves), validates the output format, sets up logging and warns about CONFIDE_*
// variables that set nothing of cmd.
func (g *globalOptions) apply(cmd *cobra.Command) error {
	cfg := g.configFile
	if !cmd.Flags().Changed("config") {
		if env := os.Getenv("CONFIDE_CONFIG"); env != "" {
			cfg = env
		}
	}
	var file map[string]any
	if _, structured := structuredConfigs[cmd.CommandPath()]; cfg != "" && !structured {
		var err error
		if file, err = readFlagConfigFile(cfg, cmd.Flags()); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("config file %s: %w (keys are the flags of '%s' with underscores; see --help)", cfg, err, cmd.CommandPath())}
		}
	}
	if err := loadFlagConfig(cmd.Flags(), file, os.LookupEnv); err != nil {
		return err
	}
	switch g.output {
	case "text", "json":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--output %q: must be text or json", g.output)}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--log-level %q: must be debug, info, warn or error", g.logLevel)}
	}
	h, err := g.logHandler(cmd.ErrOrStderr(), lvl)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	slog.SetDefault(slog.New(h))
	warnUnknownEnv(cmd, os.Environ())
	return nil
}

// logHandler is the slog handler of --log-format writing to w. The JSON handler writes one
// object a line with the attributes the code logs (round, client, task, …) as fields, so a
// fleet's logs can be collected and searched by them.
func (g *globalOptions) logHandler(w io.Writer, lvl slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", g.logFormat)
}

// reportError writes the error that ended a command to w: a line "confide: …" in the text
// log format, an ERROR record with the exit code in the JSON one (so a log collector does not
// lose the reason a process stopped).
func (g *globalOptions) reportError(w io.Writer, err error, code int) {
	if g.logFormat == "json" {
		slog.New(slog.NewJSONHandler(w, nil)).Error(err.Error(), "exit_code", code)
		return
	}
	fmt.Fprintf(w, "confide: %v\n", err)
}

// notice writes a message the operator must see whatever the log level (an interruption):
// a line "confide: …" in the text log format, a WARN record in the JSON one.
func (g *globalOptions) notice(w io.Writer, msg string) {
	if g.logFormat == "json" {
		slog.New(slog.NewJSONHandler(w, nil)).Warn(msg)
		return
	}
	fmt.Fprintf(w, "confide: %s\n", msg)
}

// announce writes a line for a person watching a long-running command (where it listens)
// in the text log format; in the JSON one the command's structured INFO record says the same.
func (g *globalOptions) announce(w io.Writer, format string, args ...any) {
	if g.logFormat == "json" {
		return
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// emit prints a command's result: the JSON object on stdout with -o json, otherwise the
// human-readable text produced by human.
func (g *globalOptions) emit(w io.Writer, obj any, human func(io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(obj)
	}
	human(w)
	return nil
}
