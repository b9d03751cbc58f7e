package main

import (
	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/model"
)

// precisionValue is a --precision flag: the number format of a model's layer math
// (model.Precision), float32 or float64.
type precisionValue struct{ p *model.Precision }

func (v precisionValue) String() string { return v.p.String() }

func (v precisionValue) Set(s string) error {
	p, err := model.ParsePrecision(s)
	if err != nil {
		return err
	}
	*v.p = p
	return nil
}

func (precisionValue) Type() string { return "precision" }

// addPrecisionFlag registers --precision on cmd, reading into p (which holds the default).
func addPrecisionFlag(cmd *cobra.Command, p *model.Precision) {
	cmd.Flags().Var(precisionValue{p}, "precision",
		"number format of the layer math: float32 (faster) or float64 (master weights, optimiser state and DP noise are float64 in both)")
}
