package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// distillResult is what 'confide model distill' reports: Before is the teacher, After the
// student.
type distillResult struct {
	Teacher string `json:"teacher"`
	Out     string `json:"out"`
	// Student is the student's spec (from --student-spec or --student-width).
	Student     model.Spec `json:"student"`
	Temperature float64    `json:"temperature"`
	Alpha       float64    `json:"alpha"`
	Unlabeled   bool       `json:"unlabeled"`
	// TrainDataset and TrainExamples are what the student learnt on.
	TrainDataset  string        `json:"train_dataset"`
	TrainExamples int           `json:"train_examples"`
	Epochs        int           `json:"epochs"`
	History       []epochReport `json:"history"`
	TrainSeconds  float64       `json:"train_seconds"`
	compressionReport
}

type distillFlags struct {
	teacher, studentSpec, out string
	studentWidth              float64
	temperature, alpha        float64
	unlabeled                 bool
	eval                      evalFlags
	tune                      tuneFlags
}

func newModelDistillCmd(g *globalOptions) *cobra.Command {
	f := &distillFlags{}
	cmd := &cobra.Command{
		Use:   "distill --teacher FILE (--student-spec SPEC | --student-width F) --dataset NAME --out OUT",
		Short: "Train a smaller student model on a teacher's softened outputs (knowledge distillation)",
		Long: `Knowledge distillation (Hinton et al. 2015): a student of any architecture learns the
teacher's class probabilities softened by --temperature T, mixed with the dataset's
labels: its loss is (1 − α)·CE(label) + α·T²·KL(teacher ‖ student) at temperature T, with
α = --alpha. With --unlabeled the labels are not read (α = 1): the student learns the
teacher's outputs alone, as on a public unlabelled dataset.

The student is --student-spec (a YAML/JSON spec; input, output, vocab and max_len left 0
are the teacher's) or --student-width F: the teacher's architecture with every width
(hidden layers, embedding, feed-forward) scaled by F, e.g. 0.5 for half width; a teacher's
feature stage is dropped (the student reads raw inputs). It reads what the teacher reads
(text with the teacher's tokenizer) and inherits its class names and input description.
It is trained on --dataset's training split with the dataset's and model's training
defaults for the flags not given, and compared with the teacher on the test split.

After a federation: distil the server's checkpoint (or a simulation's model.confide) on a
public dataset with --unlabeled. No client's data is touched, so the student keeps the
teacher's differential-privacy guarantees (post-processing), which the student's file
records as inherited — provided the distillation data really is public and not the
clients' data. Distilling with labels reads them without noise: the student's file then
records no guarantee.`,
		Example: `  confide model distill --teacher mnist.confide --student-width 0.5 --dataset mnist --out mnist-half.confide
  confide model distill --teacher round-0050.confide --student-spec student.yaml --dataset mnist --unlabeled --out student.confide -o json
  confide model distill --teacher spam.confide --student-width 0.5 --dataset spam --data-path spamassassin.jsonl.gz --out spam-half.confide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelDistill(ctx, g, cmd.OutOrStdout(), f)
		},
	}
	cmd.Flags().StringVar(&f.teacher, "teacher", "", "the teacher's model file")
	cmd.Flags().StringVar(&f.studentSpec, "student-spec", "", "the student's architecture: a YAML/JSON model spec file")
	cmd.Flags().Float64Var(&f.studentWidth, "student-width", 0, "the student is the teacher's architecture with every width scaled by this factor, e.g. 0.5")
	cmd.Flags().Float64Var(&f.temperature, "temperature", 2, "softmax temperature T of the soft targets (> 0; higher is softer)")
	cmd.Flags().Float64Var(&f.alpha, "alpha", 0.5, "weight of the soft targets in (0, 1]; 1 − alpha goes to the labels")
	cmd.Flags().BoolVar(&f.unlabeled, "unlabeled", false, "do not read the dataset's labels: learn the teacher's outputs alone (a public unlabelled dataset)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the student model to this file")
	f.eval.register(cmd, "dataset to distil on (training split) and to compare on: mnist, fashion-mnist, shakespeare or spam")
	f.tune.register(cmd, "epochs", 5, "passes over the training split")
	return cmd
}

func runModelDistill(ctx context.Context, g *globalOptions, w io.Writer, f *distillFlags) error {
	switch {
	case f.teacher == "":
		return usageErr("--teacher is required: the model file to distil")
	case (f.studentSpec == "") == (f.studentWidth == 0):
		return usageErr("give the student's architecture: --student-spec FILE or --student-width F (e.g. 0.5), one of them")
	case f.studentWidth != 0 && !(f.studentWidth > 0 && f.studentWidth <= 4):
		return usageErr("--student-width %v: a factor in (0, 4], e.g. 0.5 for half width", f.studentWidth)
	case !(f.temperature > 0) || math.IsInf(f.temperature, 0):
		return usageErr("--temperature %v: must be a positive number, e.g. 2", f.temperature)
	case !(f.alpha > 0 && f.alpha <= 1):
		return usageErr("--alpha %v: the soft targets' weight must be in (0, 1] (0 would ignore the teacher: use confide train)", f.alpha)
	case f.eval.df.name == "":
		return usageErr("--dataset is required: the data the student learns on (its training split)")
	case f.tune.epochs <= 0:
		return usageErr("--epochs %d: must be ≥ 1", f.tune.epochs)
	}
	if err := f.eval.check(); err != nil {
		return err
	}
	if err := checkOut(f.out, f.teacher); err != nil {
		return err
	}
	tf, err := loadModelFile(f.teacher)
	if err != nil {
		return err
	}
	teacher := tf.m
	spec, err := f.student(teacher.Spec)
	if err != nil {
		return err
	}
	student, err := model.New(spec, rand.New(rand.NewPCG(f.tune.seed, 0x696e6974)))
	if err != nil {
		return usageErr("student: %v", err)
	}
	if err := train.CheckTeacher(teacher, student); err != nil {
		return usageErr("%v", err)
	}
	for _, m := range []*model.Model{teacher, student} {
		if err := m.SetPrecision(f.tune.precision); err != nil {
			return err
		}
	}
	trainSet, testSet, err := modelDatasets(ctx, teacher, f.teacher, f.eval.df, f.eval.seed)
	if err != nil {
		return err
	}
	evalSet := f.eval.evalSplit(trainSet, testSet)
	res := distillResult{Teacher: f.teacher, Out: f.out, Student: student.Spec, Temperature: f.temperature, Alpha: f.alpha, Unlabeled: f.unlabeled,
		TrainDataset: f.eval.df.name, TrainExamples: trainSet.N}
	if f.unlabeled {
		res.Alpha = 1
	}
	if res.Before, err = measureModel(ctx, teacher, f.teacher, evalSet); err != nil {
		return err
	}
	cfg := f.tune.config(f.eval.df.name, spec.Type, 1)
	if err := cfg.Validate(); err != nil {
		return usageErr("training flags: %v", err)
	}
	res.Epochs = cfg.Epochs
	bar := newProgress(int64(trainSet.N*cfg.Epochs), "distill")
	start := time.Now()
	_, err = train.Distill(ctx, teacher, student, trainSet, nil, cfg, train.DistillConfig{Temperature: f.temperature, Alpha: res.Alpha, Unlabeled: f.unlabeled},
		func(r train.EpochReport) {
			e := epochReport{Epoch: r.Epoch, LR: r.LR, Duration: r.Duration, Train: &r.Train}
			if f.unlabeled {
				e.Train = nil // no labels: no accuracy
			}
			res.History = append(res.History, e)
			if bar != nil {
				bar.Clear()
			}
			if g.output != "json" {
				fmt.Fprintln(w, e.line(cfg.Epochs))
			}
		}, func(n int) {
			if bar != nil {
				bar.Add(n)
			}
		})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	res.TrainSeconds = time.Since(start).Seconds()
	student.Meta = studentMeta(teacher, f, res)
	if err := student.Save(f.out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if res.After, err = measureModel(ctx, student, f.out, evalSet); err != nil {
		return err
	}
	if err := timeBoth(ctx, teacher, student, evalSet, &res.compressionReport); err != nil {
		return err
	}
	res.Dataset, res.Split, res.Examples = f.eval.df.name, f.eval.split, evalSet.N
	res.compare()
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "distilled %s (%s, %s parameters) into %s (%s parameters) on %s %s at T = %g, α = %g\n", f.teacher, res.Before.ModelName,
			thousands(res.Before.Params), res.After.ModelName, thousands(res.After.Params), f.eval.df.name, map[bool]string{true: "without labels", false: "with labels"}[f.unlabeled], f.temperature, res.Alpha)
		res.print(w)
		fmt.Fprintf(w, "written to %s\n", f.out)
	})
}

// student returns the student's spec: --student-spec with the teacher's sizes where it
// leaves them 0, or the teacher's spec with its widths scaled by --student-width.
func (f *distillFlags) student(t model.Spec) (model.Spec, error) {
	if f.studentSpec != "" {
		b, err := os.ReadFile(f.studentSpec)
		if err != nil {
			return model.Spec{}, usageErr("--student-spec: %v", err)
		}
		// Decoded without validation: the sizes left 0 are the teacher's, then it is checked.
		var s model.Spec
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return model.Spec{}, usageErr("--student-spec %s: %v", f.studentSpec, err)
		}
		fill := func(dst *int, v int) {
			if *dst == 0 {
				*dst = v
			}
		}
		if s.Type == model.TypeMLP {
			fill(&s.Input, t.Input)
		} else {
			fill(&s.Vocab, t.Vocab)
			if s.Task == "" {
				s.Task = t.Task
			}
			if s.Type == model.TypeTransformer {
				fill(&s.MaxLen, t.MaxLen)
			}
		}
		if s.Task != model.TaskNextToken {
			fill(&s.Output, t.Output)
		}
		if err := s.Validate(); err != nil {
			return model.Spec{}, usageErr("--student-spec %s: %v", f.studentSpec, err)
		}
		return s, nil
	}
	scale := func(v int) int { return max(1, int(math.Round(float64(v)*f.studentWidth))) }
	s := t
	s.Mask, s.Features = nil, nil
	s.Hidden = slices.Clone(t.Hidden)
	for i, h := range s.Hidden {
		s.Hidden[i] = scale(h)
	}
	if t.IsSequence() {
		s.Embed = scale(t.Embed)
		if t.Type == model.TypeTransformer {
			s.FF = scale(t.FF)
			for s.Heads > 1 && s.Embed%s.Heads != 0 {
				s.Heads--
			}
		}
	}
	if err := s.Validate(); err != nil {
		return model.Spec{}, usageErr("--student-width %v: %v", f.studentWidth, err)
	}
	return s, nil
}

// studentMeta is the student's file metadata: what the teacher reads and names, and its
// provenance: trained centrally on the distillation data, the teacher's compression steps
// and this one, and the teacher's DP guarantees when no label was read.
func studentMeta(teacher *model.Model, f *distillFlags, res distillResult) model.Meta {
	tm := teacher.Meta
	meta := model.Meta{ClassNames: tm.ClassNames, Input: tm.Input, Tokenizer: tm.Tokenizer}
	p := model.NewProvenance(model.TrainedCentral)
	if version != "" {
		p.ConfideVersion = version
	}
	p.Dataset, p.Epochs, p.Seed = f.eval.df.name, res.Epochs, f.tune.seed
	if tp := tm.Provenance; tp != nil {
		p.Compression = slices.Clone(tp.Compression)
	}
	labels := "with its labels"
	if f.unlabeled {
		labels = "without its labels"
	}
	step := fmt.Sprintf("knowledge distillation from %s (%s, %s parameters) on %s %s, temperature %g, soft-target weight %g", f.teacher, modelName(teacher.Spec),
		thousands(teacher.NumParams()), f.eval.df.name, labels, f.temperature, res.Alpha)
	if tp := tm.Provenance; tp != nil && len(tp.Privacy) > 0 {
		if f.unlabeled {
			for _, g := range tp.Privacy {
				g.Meaning = "inherited from the teacher by distillation without labels (post-processing): holds only if the distillation data (" + f.eval.df.name + ") is public, not the private training data. The teacher's: " + g.Meaning
				if len(g.Meaning) > 4000 {
					g.Meaning = g.Meaning[:4000]
				}
				p.Privacy = append(p.Privacy, g)
			}
		} else {
			slog.Warn("distilling with labels reads them without noise: the student does not inherit the teacher's DP guarantees (use --unlabeled on public data to keep them)")
			step += "; labels read without noise, so the teacher's DP guarantees are not inherited"
		}
	}
	p.Compression = append(p.Compression, step)
	meta.Provenance = p
	return meta
}
