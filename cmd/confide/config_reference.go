package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

//go:generate go test -run TestConfigFieldDocsAreCurrent -update
//go:generate sh -c "go run . config reference --markdown > ../../docs/config.md"

func init() { registerCommand(newConfigCmd) }

// referencedCommands are the commands docs/config.md describes: those a deployment or an
// experiment configures with a file. 'confide config reference COMMAND' describes any other.
var referencedCommands = []string{"sim", "server", "client"}

// referenceKey is one key of the reference.
type referenceKey struct {
	Key     string `json:"key"`
	Env     string `json:"env"`
	Type    string `json:"type"`
	Default string `json:"default,omitempty"`
	Doc     string `json:"doc"`
}

// referenceCommand is the configuration of one command: the keys of its config file, and
// for sim and server (whose files hold a struct) the flags, which come from the command
// line or the environment only.
type referenceCommand struct {
	Command string         `json:"command"`
	File    string         `json:"file"`
	Keys    []referenceKey `json:"keys"`
	Flags   []referenceKey `json:"flags,omitempty"`
}

type configReference struct {
	Rules    string             `json:"rules"`
	Global   []referenceKey     `json:"global"`
	Commands []referenceCommand `json:"commands"`
}

const referenceRules = `Keys are snake_case; a dashed spelling (num-clients) is accepted as an alias. An unknown key is an error naming the closest valid key and every key of its section. Every key can be set from the environment as CONFIDE_<SECTION>_<KEY> (dots and dashes as underscores), which wins over the config file; flags win over both. A CONFIDE_ variable that sets nothing of the command run is warned about. Lists are comma-separated in the environment (or YAML flow lists, [a, b]); durations are Go durations (90s, 2m).`

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Describe the configuration keys of confide's commands",
		Args:  cobra.NoArgs,
	}
	var markdown bool
	ref := &cobra.Command{
		Use:   "reference [COMMAND...]",
		Short: "List every config key of a command (sim, server and client by default), with its type, environment variable and meaning",
		Long: `List every key of the config files of confide's commands, generated from the config structs
and the flags: its type, its CONFIDE_ environment variable and what it means. Without a
command it describes sim, server and client, as docs/config.md does (--markdown
prints that page: go run ./cmd/confide config reference --markdown > docs/config.md).`,
		Example: `  confide config reference sim
  confide config reference client -o json
  confide config reference --markdown > docs/config.md`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			// The next word of a command path: confide config reference model <TAB>.
			c, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() && strings.HasPrefix(s.Name(), prefix) {
					names = append(names, s.Name()+"\t"+s.Short)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := referencedCommands
			if len(args) > 0 {
				paths = []string{strings.Join(args, " ")}
			}
			ref, err := buildReference(cmd.Root(), paths)
			if err != nil {
				return err
			}
			if markdown {
				writeMarkdownReference(cmd.OutOrStdout(), ref)
				return nil
			}
			return g.emit(cmd.OutOrStdout(), ref, func(w io.Writer) { writeTextReference(w, ref) })
		},
	}
	ref.Flags().BoolVar(&markdown, "markdown", false, "print the reference as Markdown (docs/config.md)")
	cmd.AddCommand(ref)
	return cmd
}

// buildReference describes the commands at paths (below root) from their structs and flags.
func buildReference(root *cobra.Command, paths []string) (configReference, error) {
	ref := configReference{Rules: referenceRules}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { ref.Global = append(ref.Global, flagReference(f)) })
	for _, p := range paths {
		c, rest, err := root.Find(strings.Fields(p))
		if err != nil || len(rest) > 0 || c == root {
			return ref, &exitError{code: exitUsage, err: fmt.Errorf("no command %q: name one of confide's commands, e.g. sim, server, client or train", p)}
		}
		rc := referenceCommand{Command: c.CommandPath(), File: "the command's flags, with underscores"}
		var flags []referenceKey
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				flags = append(flags, flagReference(f))
			}
		})
		if t, ok := structuredConfigs[c.CommandPath()]; ok {
			rc.File = "sections and keys of " + t.String()
			for _, k := range structKeys(t, "") {
				doc := fieldDoc(k.field)
				if f := c.LocalFlags().Lookup(strings.ReplaceAll(k.name, "_", "-")); doc == "" && f != nil {
					doc = f.Usage // a key the command also takes as a flag: --tls-key
				}
				rc.Keys = append(rc.Keys, referenceKey{Key: k.name, Env: envVar(k.name), Type: typeName(k.typ), Doc: doc})
			}
			rc.Flags = flags
		} else {
			rc.Keys = flags
		}
		ref.Commands = append(ref.Commands, rc)
	}
	return ref, nil
}

func flagReference(f *pflag.Flag) referenceKey {
	return referenceKey{Key: flagKey(f.Name), Env: envVar(flagKey(f.Name)), Type: flagTypeName(f.Value.Type()), Default: f.DefValue, Doc: f.Usage}
}

// fieldDoc is the doc comment of a config struct's field (configdoc_gen.go).
func fieldDoc(f keyedField) string {
	return fieldDocs[fieldDocKey(f.owner, f.Name)]
}

// fieldDocKey names a field of a struct type: package path, type and field name.
func fieldDocKey(owner reflect.Type, field string) string {
	return docPkgPath(owner) + "." + owner.Name() + "." + field
}

// docPkgPath is t's package path, this command's ("main" in the binary) by its import path.
func docPkgPath(t reflect.Type) string {
	if p := t.PkgPath(); p != "main" {
		return p
	}
	return "github.com/confide-fl/confide/cmd/confide"
}

// flagTypeName names a flag's type as typeName names a key's.
func flagTypeName(t string) string {
	switch t {
	case "int", "int64", "int32":
		return "integer"
	case "uint", "uint64", "uint32":
		return "integer ≥ 0"
	case "float64", "float32":
		return "number"
	case "bool":
		return "boolean"
	case "stringSlice", "stringArray":
		return "list of string"
	case "intSlice":
		return "list of integer"
	case "float64Slice":
		return "list of number"
	}
	return t
}

func writeTextReference(w io.Writer, ref configReference) {
	fmt.Fprintf(w, "%s\n", ref.Rules)
	section := func(title string, keys []referenceKey) {
		fmt.Fprintf(w, "\n%s\n", title)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s (%s; %s", k.Key, k.Type, k.Env)
			if k.Default != "" {
				fmt.Fprintf(w, "; default %s", k.Default)
			}
			fmt.Fprintln(w, ")")
			if k.Doc != "" {
				fmt.Fprintf(w, "      %s\n", k.Doc)
			}
		}
	}
	section("every command (flags of confide)", ref.Global)
	for _, c := range ref.Commands {
		section(c.Command+": config file keys ("+c.File+")", c.Keys)
		if len(c.Flags) > 0 {
			section(c.Command+": flags (command line or environment only)", c.Flags)
		}
	}
}

func writeMarkdownReference(w io.Writer, ref configReference) {
	fmt.Fprint(w, "# Configuration reference\n\n")
	fmt.Fprint(w, "Generated from the config structs and the flags by `go generate ./cmd/confide`\n(`go run ./cmd/confide config reference --markdown > docs/config.md`); a test fails when\nthis page and the code disagree. `confide config reference COMMAND` prints the same for\nany command, `-o json` as one JSON object.\n\n")
	fmt.Fprintf(w, "%s\n", ref.Rules)
	table := func(keys []referenceKey) {
		fmt.Fprint(w, "\n| key | type | environment | default | meaning |\n| --- | --- | --- | --- | --- |\n")
		for _, k := range keys {
			def := ""
			if k.Default != "" {
				def = "`" + k.Default + "`"
			}
			fmt.Fprintf(w, "| `%s` | %s | `%s` | %s | %s |\n", k.Key, k.Type, k.Env, mdCell(def), mdCell(k.Doc))
		}
	}
	fmt.Fprint(w, "\n## Every command\n\nThe flags of `confide` itself, taken by every command.\n")
	table(ref.Global)
	for _, c := range ref.Commands {
		fmt.Fprintf(w, "\n## %s\n\nThe config file (`--config`) holds the %s.\n", c.Command, c.File)
		table(c.Keys)
		if len(c.Flags) > 0 {
			fmt.Fprintf(w, "\nFlags of `%s`, from the command line or the environment only:\n", c.Command)
			table(c.Flags)
		}
	}
}

// mdCell escapes a Markdown table cell.
func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
