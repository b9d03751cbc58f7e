package main

import "github.com/spf13/cobra"

func init() { registerCommand(newBenchCmd) }

// benchChildren is filled by the files defining bench subcommands.
var benchChildren []func(*globalOptions) *cobra.Command

func newBenchCmd(g *globalOptions) *cobra.Command {
	c := &cobra.Command{Use: "bench", Short: "Measure speed: training throughput, secure aggregation"}
	for _, f := range benchChildren {
		c.AddCommand(f(g))
	}
	return c
}
