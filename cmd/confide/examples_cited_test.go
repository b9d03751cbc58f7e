package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/confide-fl/confide/model"
)

var examplePath = regexp.MustCompile(`examples/[A-Za-z0-9_.*/-]*[A-Za-z0-9_*]`)

// Every file under examples/ that a command's help text cites (its description, examples
// or a flag's usage) exists, so a new user can run what the help shows.
func TestHelpCitesOnlyExistingExamples(t *testing.T) {
	cited := 0
	for _, c := range append(allCommands(newRootCmd()), newRootCmd()) {
		texts := []string{c.Short, c.Long, c.Example}
		c.Flags().VisitAll(func(f *pflag.Flag) { texts = append(texts, f.Usage) })
		for _, p := range examplePath.FindAllString(strings.Join(texts, "\n"), -1) {
			if !strings.ContainsAny(strings.TrimPrefix(p, "examples/"), "./") {
				continue // "examples/s", a throughput
			}
			cited++
			matches, err := filepath.Glob(filepath.Join("..", "..", filepath.FromSlash(p)))
			if err != nil || len(matches) == 0 {
				t.Errorf("'%s --help' cites %s, which does not exist", c.CommandPath(), p)
			}
		}
	}
	if cited < 5 {
		t.Fatalf("only %d citations of examples/ found: is the pattern right?", cited)
	}
}

// examples/mlp.yaml, which train --help runs with --model-spec, is a valid model spec.
func TestExampleModelSpec(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "mlp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.ParseSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil || s.Type != model.TypeMLP || s.Input != 784 || s.Output != 10 {
		t.Fatalf("spec %+v (validation: %v), want a valid MNIST mlp", s, err)
	}
}
