package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// globalOptions are the persistent flags shared by every subcommand.
type globalOptions struct {
	configFile string
	output     string // "text" or "json"
	logLevel   string
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "confide",
		Short: "Privacy-preserving federated learning: DP-SGD, secure aggregation, simulation",
		Long: `confide trains neural networks centrally or federated across many data owners, with
differentially private SGD and threshold-homomorphic secure aggregation.

Every flag may also come from the config file (--config) or the environment (CONFIDE_<FLAG>).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.apply(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "YAML config file whose keys are flag names (e.g. epochs: 3)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json (json prints exactly one object on stdout)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())} // a usage error
	})

	root.AddCommand(newVersionCmd(g))
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	return root
}

// subcommands is filled by the init functions of the files that define the subcommands,
// so each command lives in its own file without editing this one.
var subcommands []func(*globalOptions) *cobra.Command

func registerCommand(f func(*globalOptions) *cobra.Command) { subcommands = append(subcommands, f) }

// apply loads the config file and the CONFIDE_* environment into every flag of cmd that
// was not set on the command line, validates the output format and sets up logging.
func (g *globalOptions) apply(cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("CONFIDE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	cfg := g.configFile
	if !cmd.Flags().Changed("config") {
		if env := os.Getenv("CONFIDE_CONFIG"); env != "" {
			cfg = env
		}
	}
	if cfg != "" {
		v.SetConfigFile(cfg)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config file %s: %w (fix the YAML or pass another --config)", cfg, err)
		}
		if err := checkConfigKeys(cmd, v.AllSettings(), cfg); err != nil {
			return err
		}
	}
	var ferr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if ferr != nil || f.Changed || f.Name == "config" {
			return
		}
		if !v.IsSet(f.Name) {
			return
		}
		val := v.Get(f.Name)
		var s string
		switch x := val.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if err := cmd.Flags().Set(f.Name, s); err != nil {
			ferr = fmt.Errorf("setting %s from config/env to %q: %w", f.Name, s, err)
		}
	})
	if ferr != nil {
		return ferr
	}
	switch g.output {
	case "text", "json":
	default:
		return fmt.Errorf("--output %q: must be text or json", g.output)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: must be debug, info, warn or error", g.logLevel)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
	return nil
}

// checkConfigKeys rejects config-file keys that are not flags of the command being run, so a
// typo is an error instead of a silently ignored setting. Nested maps are allowed only for
// commands that read structured configs themselves (they set the "structured-config" annotation).
func checkConfigKeys(cmd *cobra.Command, settings map[string]any, file string) error {
	if cmd.Annotations["structured-config"] == "true" {
		return nil
	}
	for k := range settings {
		if cmd.Flags().Lookup(k) == nil {
			return fmt.Errorf("config file %s: unknown key %q for '%s' (keys are flag names; see --help)", file, k, cmd.CommandPath())
		}
	}
	return nil
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
