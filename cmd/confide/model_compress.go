package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// The compression commands (prune, quantize, distill) share: an optional evaluation
// dataset, the size/accuracy/latency report of the model before and after, and the output
// file.

// modelStats are a model file's size, accuracy and forward-pass latency.
type modelStats struct {
	Path      string `json:"path"`
	ModelName string `json:"model_name"`
	FileBytes int64  `json:"file_bytes"`
	Params    int    `json:"params"`
	// Sparsity is the fraction of parameters exactly zero; Precision the weights' format.
	Sparsity  float64 `json:"sparsity"`
	Precision string  `json:"precision"`
	// Accuracy and Loss on the evaluation split (with --dataset).
	Accuracy *float64 `json:"accuracy,omitempty"`
	Loss     *float64 `json:"loss,omitempty"`
	// LatencyMs is the median time of a forward pass of one example; ExamplesPerSecond the
	// throughput of forward passes of batches of 256 (in this process, model loaded).
	LatencyMs         float64 `json:"latency_ms"`
	ExamplesPerSecond float64 `json:"examples_per_second"`
}

// compressionReport is the common part of the compression commands' results.
type compressionReport struct {
	Before modelStats `json:"before"`
	After  modelStats `json:"after"`
	// Dataset and Split name what accuracy was measured on (empty without --dataset),
	// Examples how many.
	Dataset  string `json:"dataset,omitempty"`
	Split    string `json:"split,omitempty"`
	Examples int    `json:"examples,omitempty"`
	// SizeRatio is the before/after file size; AccuracyChange after − before (in accuracy,
	// not points); Speedup the after/before throughput and LatencySpeedup the before/after
	// latency of one example.
	SizeRatio      float64  `json:"size_ratio"`
	AccuracyChange *float64 `json:"accuracy_change,omitempty"`
	Speedup        float64  `json:"speedup"`
	LatencySpeedup float64  `json:"latency_speedup"`
}

// evalFlags are the optional dataset of the compression commands.
type evalFlags struct {
	df    dataFlags
	split string
	seed  uint64
	// maxExamples bounds the evaluation split (0: all).
	maxExamples int
}

func (f *evalFlags) register(cmd *cobra.Command, datasetHelp string) {
	cmd.Flags().StringVar(&f.df.name, "dataset", "", datasetHelp)
	cmd.Flags().StringVar(&f.df.opts.Dir, "data-dir", "", "directory holding the dataset files (default: cache or system location; for shakespeare and spam see --data-path)")
	cmd.Flags().StringVar(&f.df.opts.Path, "data-path", "", "the dataset file of shakespeare (tinyshakespeare.txt) or spam (spamassassin.jsonl.gz)")
	cmd.Flags().IntVar(&f.df.opts.SeqLen, "seq-len", 0, "token sequence length of text datasets (default: the model's)")
	cmd.Flags().StringVar(&f.split, "split", "test", "the split accuracy is measured on: test or train")
	cmd.Flags().Uint64Var(&f.seed, "data-seed", 0, "seed of the dataset's random split (spam); default: the seed the model was trained with")
	cmd.Flags().IntVar(&f.maxExamples, "max-examples", 0, "measure accuracy on the first N examples of the split only (0: all)")
}

func (f *evalFlags) check() error {
	switch {
	case f.split != "test" && f.split != "train":
		return usageErr("--split %q: use test or train", f.split)
	case f.maxExamples < 0:
		return usageErr("--max-examples %d: must be ≥ 0 (0: all)", f.maxExamples)
	case f.df.opts.SeqLen < 0:
		return usageErr("--seq-len %d: must be ≥ 0", f.df.opts.SeqLen)
	}
	return nil
}

// modelDatasets loads the dataset df names as model m reads it, as evaluate does: text
// datasets with the model's sequence length and character vocabulary, spam's split from
// seed (0: the seed of the model's provenance), and both splits re-encoded with the
// model's tokenizer. A dataset that does not fit the model is a usage error.
func modelDatasets(ctx context.Context, m *model.Model, path string, df dataFlags, seed uint64) (trainSet, testSet *data.Dataset, err error) {
	opts := df.opts
	opts.Seed = seed
	if p := m.Meta.Provenance; seed == 0 && p != nil && p.Seed != 0 {
		opts.Seed = p.Seed
	}
	if opts.Seed == 0 {
		opts.Seed = 1 // train's default
	}
	if t := m.Meta.Tokenizer; t != nil {
		if t.Type == model.TokenizerChar {
			for _, c := range t.Vocab {
				opts.CharVocab = append(opts.CharVocab, []rune(c)[0])
			}
		}
		if opts.SeqLen == 0 && t.MaxLen > 0 {
			opts.SeqLen = t.MaxLen
		}
	}
	if m.Spec.MaxLen > 0 && opts.SeqLen == 0 {
		opts.SeqLen = m.Spec.MaxLen // a Transformer reads at most max_len tokens
	}
	if data.IsSchemaFile(df.name) || df.name == "" {
		// A model trained on a spec file reads its data with the schema it recorded.
		if opts.Schema, err = recordedSchema(m, path); err != nil {
			return nil, nil, err
		}
	}
	if trainSet, testSet, err = loadDatasetWith(ctx, df.name, opts); err != nil {
		return nil, nil, usageErr("--dataset %s: %v", df.name, err)
	}
	for _, ds := range []*data.Dataset{trainSet, testSet} {
		if err := fitDataset(m, ds); err != nil {
			return nil, nil, usageErr("model %s does not fit dataset %s: %v", path, df.name, err)
		}
	}
	return trainSet, testSet, nil
}

// evalSplit returns the split f names, cut to --max-examples.
func (f *evalFlags) evalSplit(trainSet, testSet *data.Dataset) *data.Dataset {
	ds := testSet
	if f.split == "train" {
		ds = trainSet
	}
	if f.maxExamples > 0 && f.maxExamples < ds.N {
		idx := make([]int, f.maxExamples)
		for i := range idx {
			idx[i] = i
		}
		ds = ds.Subset(idx)
	}
	return ds
}

// measureModel measures a model: size in its file format (path, when it names a file, else
// Marshal's length), sparsity, and, given ds, accuracy and loss on it. Latency is measured
// for two models together (timeBoth).
func measureModel(ctx context.Context, m *model.Model, path string, ds *data.Dataset) (modelStats, error) {
	s := modelStats{Path: path, ModelName: modelName(m.Spec), Params: m.NumParams(), Precision: m.Precision()}
	if st, err := os.Stat(path); err == nil {
		s.FileBytes = st.Size()
	} else {
		s.FileBytes = int64(len(m.Marshal()))
	}
	zeros := 0
	for _, v := range m.Params {
		if v == 0 {
			zeros++
		}
	}
	s.Sparsity = float64(zeros) / float64(max(1, len(m.Params)))
	if ds != nil {
		met, err := train.Evaluate(m, ds, 256)
		if err != nil {
			return s, err
		}
		s.Accuracy, s.Loss = &met.Accuracy, &met.Loss
	}
	return s, ctx.Err()
}

// timingRounds is the number of alternating rounds timeBoth measures each model in.
const timingRounds = 3

// timeBoth measures the latency and throughput of the models before and after, in
// alternating rounds so both see the same load on the machine, keeping each one's best
// round (the least disturbed).
func timeBoth(ctx context.Context, before, after *model.Model, ds *data.Dataset, r *compressionReport) error {
	for range timingRounds {
		for _, x := range []struct {
			m *model.Model
			s *modelStats
		}{{before, &r.Before}, {after, &r.After}} {
			if err := ctx.Err(); err != nil {
				return err
			}
			lat, thr, err := measureLatency(x.m, ds)
			if err != nil {
				return err
			}
			if x.s.LatencyMs == 0 || lat < x.s.LatencyMs {
				x.s.LatencyMs = lat
			}
			x.s.ExamplesPerSecond = max(x.s.ExamplesPerSecond, thr)
		}
	}
	return nil
}

// Latency measurement: the median of latencyReps single-example forward passes, and the
// throughput of throughputBatch-example passes over throughputExamples examples.
const (
	latencyReps        = 200
	throughputBatch    = 256
	throughputExamples = 4096
)

// measureLatency times m's forward pass on inputs of ds (or synthetic ones when nil):
// the median milliseconds of one example, and examples per second at batch 256.
func measureLatency(m *model.Model, ds *data.Dataset) (ms, perSecond float64, err error) {
	if ds == nil {
		ds = syntheticInputs(m, throughputExamples)
	}
	var b data.Batch
	var in model.Input
	batch := func(lo, n int) *model.Input {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = (lo + i) % ds.N
		}
		ds.Gather(&b, idx)
		train.Input(ds, &b, &in)
		return &in
	}
	if _, err := m.Forward(batch(0, 1)); err != nil { // warm: buffers sized
		return 0, 0, err
	}
	times := make([]float64, latencyReps)
	for r := range times {
		x := batch(r, 1)
		start := time.Now()
		if _, err := m.Forward(x); err != nil {
			return 0, 0, err
		}
		times[r] = float64(time.Since(start).Nanoseconds()) / 1e6
	}
	sort.Float64s(times)
	n := min(throughputExamples, max(ds.N, throughputBatch))
	var total time.Duration
	for lo := 0; lo < n; lo += throughputBatch {
		x := batch(lo, min(throughputBatch, n-lo))
		start := time.Now()
		if _, err := m.Forward(x); err != nil {
			return 0, 0, err
		}
		total += time.Since(start)
	}
	return times[len(times)/2], float64(n) / total.Seconds(), nil
}

// syntheticInputs are n inputs for m when no dataset is given: features uniform in
// [0, 1] (uniform category indices at embedded columns), or token sequences of the
// model's longest length (64 for recurrent models).
func syntheticInputs(m *model.Model, n int) *data.Dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	s := m.Spec
	if !s.IsSequence() {
		ds := &data.Dataset{Name: "synthetic", N: n, Dim: s.Input, X: make([]float64, n*s.Input)}
		for i := range ds.X {
			ds.X[i] = rng.Float64()
		}
		for _, e := range s.Embeddings {
			for i := range n {
				ds.X[i*s.Input+e.Column] = float64(rng.IntN(e.Categories))
			}
		}
		return ds
	}
	T := s.MaxLen
	if T == 0 {
		T = 64
	}
	ds := &data.Dataset{Name: "synthetic", N: n, SeqLen: T, Tokens: make([]int32, n*T), Lengths: make([]int32, n), VocabSize: s.Vocab}
	for i := range n {
		ds.Lengths[i] = int32(T)
		for t := range T {
			ds.Tokens[i*T+t] = int32(rng.IntN(s.Vocab))
		}
	}
	return ds
}

// compare fills the ratios of a report.
func (r *compressionReport) compare() {
	r.SizeRatio = float64(r.Before.FileBytes) / float64(max(1, r.After.FileBytes))
	if r.Before.Accuracy != nil && r.After.Accuracy != nil {
		d := *r.After.Accuracy - *r.Before.Accuracy
		r.AccuracyChange = &d
	}
	if r.Before.ExamplesPerSecond > 0 {
		r.Speedup = r.After.ExamplesPerSecond / r.Before.ExamplesPerSecond
	}
	if r.After.LatencyMs > 0 {
		r.LatencySpeedup = r.Before.LatencyMs / r.After.LatencyMs
	}
}

// print writes the before/after table.
func (r compressionReport) print(w io.Writer) {
	acc := func(s modelStats) string {
		if s.Accuracy == nil {
			return "–"
		}
		return fmt.Sprintf("%.4f", *s.Accuracy)
	}
	fmt.Fprintf(w, "%-8s %-12s %10s %-9s %9s %9s %11s  %s\n", "", "file bytes", "sparsity", "precision", "accuracy", "latency", "examples/s", "model")
	for _, row := range []struct {
		name string
		s    modelStats
	}{{"before", r.Before}, {"after", r.After}} {
		fmt.Fprintf(w, "%-8s %-12s %9.2f%% %-9s %9s %7.3fms %11.0f  %s (%s)\n", row.name, thousands(int(row.s.FileBytes)), 100*row.s.Sparsity,
			row.s.Precision, acc(row.s), row.s.LatencyMs, row.s.ExamplesPerSecond, row.s.Path, row.s.ModelName)
	}
	fmt.Fprintf(w, "%.2f× smaller on disk, %.2f× the throughput, %.2f× faster per example", r.SizeRatio, r.Speedup, r.LatencySpeedup)
	if r.AccuracyChange != nil {
		fmt.Fprintf(w, ", accuracy %+.2f points on %s %s (%s examples)", 100**r.AccuracyChange, r.Dataset, r.Split, thousands(r.Examples))
	}
	fmt.Fprintln(w)
}

// checkOut validates --out: required, not the input file.
func checkOut(out, in string) error {
	if out == "" {
		return usageErr("--out is required: the file to write the new model to")
	}
	a, errA := filepath.Abs(out)
	b, errB := filepath.Abs(in)
	if errA == nil && errB == nil && a == b {
		return usageErr("--out %s is the input model file: write the new model to another file", out)
	}
	return nil
}

// withCompression returns meta with the step recorded in its provenance (a copy: metadata
// is shared between clones).
// A file without provenance (written before it existed) says nothing of how its model was
// made, so nothing is added to it.
func withCompression(meta model.Meta, step string) model.Meta {
	if meta.Provenance == nil {
		return meta
	}
	c := *meta.Provenance
	p := &c
	p.Compression = append(slices.Clone(p.Compression), step)
	p.Privacy = slices.Clone(p.Privacy)
	meta.Provenance = p
	return meta
}

// percent formats a fraction as a percentage for provenance notes.
func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
