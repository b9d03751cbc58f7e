package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/model"
)

// inspectResult is what 'confide model inspect' reports.
type inspectResult struct {
	Path          string     `json:"path"`
	FormatVersion uint32     `json:"format_version"`
	FileBytes     int64      `json:"file_bytes"`
	ModelName     string     `json:"model_name"`
	Spec          model.Spec `json:"spec"`
	Input         string     `json:"input"`
	Outputs       int        `json:"outputs"`
	Params        int        `json:"params"`
	// ZeroParams are parameters exactly 0; Sparsity is their fraction.
	ZeroParams int     `json:"zero_params"`
	Sparsity   float64 `json:"sparsity"`
	// Precision is the weights' number format (float64, int8), ParamBytes the parameters'
	// size in the file; Quantization says how an int8 model's activations are quantised
	// and how many weight tensors are int8.
	Precision    string             `json:"precision"`
	ParamBytes   int64              `json:"param_bytes"`
	Quantization *quantizationStats `json:"quantization,omitempty"`
	// PrunedParams are the parameters a pruned model's mask fixes at zero (they stay zero
	// in fine-tuning and federations).
	PrunedParams int          `json:"pruned_params,omitempty"`
	Layers       []layerStats `json:"layers"`
	Metadata     model.Meta   `json:"metadata"`
	// Privacy summarises the provenance's DP guarantees in words.
	Privacy string `json:"privacy"`
}

// quantizationStats summarises an int8 model's quantisation.
type quantizationStats struct {
	Activations string `json:"activations"`
	Tensors     int    `json:"tensors"`
	Params      int    `json:"params"`
}

// layerStats is one parametrised layer (a Transformer block is one) of inspect's report.
type layerStats struct {
	Layer      string  `json:"layer"`
	Params     int     `json:"params"`
	ZeroParams int     `json:"zero_params"`
	Sparsity   float64 `json:"sparsity"`
}

func newModelInspectCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a model file: architecture, parameters, sparsity, precision, metadata and provenance",
		Long: `Show what a model file holds: its architecture (spec), parameter count, sparsity (the
fraction of parameters exactly zero, overall and per layer), precision, the metadata
inference uses (input shape and normalisation, class names, tokenizer) and how it was
trained (central or federated, rounds or epochs, DP guarantees with their level, data set,
date, confide version).`,
		Example: `  confide model inspect model.confide
  confide model inspect results/mnist-mlp-20260101-120000/model.confide -o json`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := loadModelFile(args[0])
			if err != nil {
				return err
			}
			res := inspect(f)
			return g.emit(cmd.OutOrStdout(), res, func(w io.Writer) { res.print(w) })
		},
	}
}

func inspect(f *modelFile) inspectResult {
	m := f.m
	res := inspectResult{
		Path: f.path, FormatVersion: f.version, FileBytes: f.bytes, ModelName: modelName(m.Spec), Spec: m.Spec,
		Input: inputShape(m), Outputs: m.Spec.Output, Params: m.NumParams(), Precision: m.Precision(),
		ParamBytes: m.ParamBytes(), Metadata: m.Meta, Privacy: privacySummary(m.Meta.Provenance),
	}
	if q := m.Quantization(); q != nil {
		res.Quantization = &quantizationStats{Activations: q.Activations, Tensors: len(q.Tensors)}
		for _, t := range q.Tensors {
			res.Quantization.Params += t.Size()
		}
	}
	if mask := m.Spec.Mask; mask != nil {
		res.PrunedParams = mask.Pruned()
	}
	zeros := func(p []float64) int {
		n := 0
		for _, v := range p {
			if v == 0 {
				n++
			}
		}
		return n
	}
	frac := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	res.ZeroParams = zeros(m.Params)
	res.Sparsity = frac(res.ZeroParams, res.Params)
	off := 0
	for _, l := range m.Layers() {
		p, ok := l.(model.ParamLayer)
		if !ok {
			continue
		}
		n := p.NumParams()
		z := zeros(m.Params[off : off+n])
		res.Layers = append(res.Layers, layerStats{Layer: model.LayerName(l), Params: n, ZeroParams: z, Sparsity: frac(z, n)})
		off += n
	}
	return res
}

// privacySummary says in one line what DP guarantees a provenance records.
func privacySummary(p *model.Provenance) string {
	switch {
	case p == nil:
		return "unknown: the file records no provenance"
	case len(p.Privacy) == 0:
		return "none: trained without differential privacy (ε = ∞)"
	}
	var parts []string
	for _, g := range p.Privacy {
		s := fmt.Sprintf("%s-level (ε = %.3g, δ = %g)", g.Level, g.Epsilon, g.Delta)
		if g.Mechanism != "" {
			s += " by " + g.Mechanism
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func (r inspectResult) print(w io.Writer) {
	fmt.Fprintf(w, "%s: %s, %s parameters (%s, %.1f MB), sparsity %.2f%% (%s exact zeros); format version %d, %s bytes\n",
		r.Path, r.ModelName, thousands(r.Params), r.Precision, float64(r.ParamBytes)/1e6, 100*r.Sparsity, thousands(r.ZeroParams), r.FormatVersion, thousands(int(r.FileBytes)))
	spec := r.Spec
	spec.Mask = nil // thousands of bits; summarised below
	fmt.Fprintf(w, "spec:       %s\n", spec.JSON())
	if r.PrunedParams > 0 {
		fmt.Fprintf(w, "pruned:     %s parameters fixed at zero by the spec's mask (kept zero in fine-tuning and federations)\n", thousands(r.PrunedParams))
	}
	if q := r.Quantization; q != nil {
		fmt.Fprintf(w, "precision:  int8 weights in %d tensors (%s parameters, a float32 scale per output channel), %s activations; %s bytes of parameters\n",
			q.Tensors, thousands(q.Params), q.Activations, thousands(int(r.ParamBytes)))
	}
	fmt.Fprintf(w, "input:      %s\n", r.Input)
	meta := r.Metadata
	if in := meta.Input; in != nil {
		norm := "raw values as they are"
		if len(in.Mean) > 0 || len(in.Std) > 0 {
			norm = fmt.Sprintf("(x − mean %s) / std %s", shortList(in.Mean), shortList(in.Std))
		}
		fmt.Fprintf(w, "            normalised as %s; %s\n", norm, in.Description)
	}
	if t := meta.Tokenizer; t != nil {
		kept := "all tokens of a text"
		if t.MaxLen > 0 {
			kept = fmt.Sprintf("the first %d tokens of a text", t.MaxLen)
		}
		clean := ""
		if t.StripEmailHeaders || t.StripHTML {
			clean = "; e-mail headers and HTML stripped first"
		}
		fmt.Fprintf(w, "tokenizer:  %s, %s tokens (+ padding and unknown), %s%s\n", t.Type, thousands(len(t.Vocab)), kept, clean)
	}
	if names := meta.OutputNames(r.Spec); len(meta.ClassNames) > 0 {
		fmt.Fprintf(w, "classes:    %s\n", shortNames(names))
	} else if names != nil {
		fmt.Fprintf(w, "outputs:    the next token: %s\n", shortNames(names))
	} else {
		fmt.Fprintf(w, "outputs:    %d (no class names recorded)\n", r.Outputs)
	}
	if p := meta.Provenance; p != nil {
		var how []string
		switch p.Mode {
		case model.TrainedCentral:
			how = append(how, "trained centrally")
		case model.TrainedSim:
			how = append(how, "trained in a simulated federation")
		case model.TrainedServer:
			how = append(how, "trained by a federation (server checkpoint)")
		}
		if p.Dataset != "" {
			how = append(how, "on "+p.Dataset)
		}
		if p.Strategy != "" {
			how = append(how, "strategy "+p.Strategy)
		}
		if p.Clients > 0 {
			how = append(how, thousands(p.Clients)+" clients")
		}
		if p.Rounds > 0 {
			how = append(how, plural(p.Rounds, "round"))
		}
		if p.Epochs > 0 {
			how = append(how, plural(p.Epochs, "epoch"))
		}
		if p.Seed != 0 {
			how = append(how, fmt.Sprintf("seed %d", p.Seed))
		}
		fmt.Fprintf(w, "provenance: %s\n", strings.Join(how, ", "))
		if p.Created != "" || p.ConfideVersion != "" {
			fmt.Fprintf(w, "            written %s by confide %s\n", p.Created, p.ConfideVersion)
		}
	} else {
		fmt.Fprintf(w, "provenance: none recorded\n")
	}
	if p := meta.Provenance; p != nil {
		for i, c := range p.Compression {
			label := "            "
			if i == 0 {
				label = "compressed: "
			}
			fmt.Fprintf(w, "%s%s\n", label, c)
		}
	}
	fmt.Fprintf(w, "privacy:    %s\n", r.Privacy)
	if p := meta.Provenance; p != nil {
		for _, g := range p.Privacy {
			if g.Meaning != "" {
				fmt.Fprintf(w, "            %s-level: %s\n", g.Level, g.Meaning)
			}
		}
	}
	fmt.Fprintf(w, "layers:\n")
	for _, l := range r.Layers {
		fmt.Fprintf(w, "  %-18s %12s parameters, sparsity %.2f%%\n", l.Layer, thousands(l.Params), 100*l.Sparsity)
	}
}

// plural counts n things: "1 epoch", "2 epochs".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return thousands(n) + " " + thing + "s"
}

// shortList prints a normalisation vector: its one value, or its length.
func shortList(v []float64) string {
	switch len(v) {
	case 0:
		return "none"
	case 1:
		return fmt.Sprintf("%g", v[0])
	}
	return fmt.Sprintf("(%d values)", len(v))
}

// shortNames lists names, quoted, the first 20 of a long list.
func shortNames(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i == 20 {
			fmt.Fprintf(&b, " … (%d in all)", len(names))
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	return b.String()
}
