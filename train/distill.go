package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// DistillConfig configures knowledge distillation (Hinton et al. 2015): the student learns
// the teacher's class probabilities softened by a temperature, mixed with the labels.
type DistillConfig struct {
	// Temperature T > 1 softens both models' softmax, so the student also learns which
	// wrong classes the teacher finds likely (default 2).
	Temperature float64 `json:"temperature" yaml:"temperature"`
	// Alpha is the weight of the soft targets, 1 − Alpha that of the labels (0: the
	// default 0.5; 1 with Unlabeled).
	Alpha float64 `json:"alpha" yaml:"alpha"`
	// Unlabeled ignores the dataset's labels: the student learns the teacher's outputs
	// alone, as on a public unlabelled dataset.
	Unlabeled bool `json:"unlabeled,omitempty" yaml:"unlabeled,omitempty"`
}

// WithDefaults fills the zero fields.
func (d DistillConfig) WithDefaults() DistillConfig {
	if d.Temperature == 0 {
		d.Temperature = 2
	}
	if d.Alpha == 0 && !d.Unlabeled {
		d.Alpha = 0.5
	}
	if d.Unlabeled {
		d.Alpha = 1
	}
	return d
}

// Validate checks the configuration, naming the key and the fix.
func (d DistillConfig) Validate() error {
	var errs []error
	if !(d.Temperature > 0) || math.IsInf(d.Temperature, 0) {
		errs = append(errs, fmt.Errorf("temperature = %v: must be a positive number (e.g. 2)", d.Temperature))
	}
	if !(d.Alpha >= 0 && d.Alpha <= 1) {
		errs = append(errs, fmt.Errorf("alpha = %v: the soft targets' weight must be in [0, 1]", d.Alpha))
	}
	return errors.Join(errs...)
}

// distillState is a trainer's teacher and its buffers.
type distillState struct {
	teacher *model.Model
	cfg     DistillConfig
	soft    []float64
	class   []int32
}

// Distill makes the trainer's steps learn from teacher as d says: every batch is run
// through the teacher (in evaluation mode) and its tempered probabilities become soft
// targets (model.Targets.Soft). The teacher must have the student's outputs and read the
// same inputs (dense rows of the same width, with or without its own feature stage, or
// the same token ids); a student with a feature stage is not supported. The teacher is
// only read.
func (t *Trainer) Distill(teacher *model.Model, d DistillConfig) error {
	d = d.WithDefaults()
	if err := d.Validate(); err != nil {
		return fmt.Errorf("distill: %w", err)
	}
	if err := CheckTeacher(teacher, t.Model); err != nil {
		return err
	}
	t.distill = &distillState{teacher: teacher, cfg: d}
	return nil
}

// CheckTeacher reports whether student can be distilled from teacher, naming the mismatch.
func CheckTeacher(teacher, student *model.Model) error {
	ts, ss := teacher.Spec, student.Spec
	switch {
	case student.Features() != nil:
		return errors.New("distill: the student has a feature stage; distil into a model that reads raw inputs (the teacher may have one)")
	case ts.Loss != model.LossCrossEntropy || ss.Loss != model.LossCrossEntropy:
		return errors.New("distill: teacher and student must be classifiers (loss cross_entropy)")
	case ts.IsSequence() != ss.IsSequence():
		return fmt.Errorf("distill: the teacher (%s) and the student (%s) read different inputs (token sequences and dense rows)", ts.Type, ss.Type)
	case !ts.IsSequence() && ts.Input != ss.Input:
		return fmt.Errorf("distill: the teacher reads %d features, the student %d", ts.Input, ss.Input)
	case ts.Output != ss.Output:
		return fmt.Errorf("distill: the teacher has %d outputs, the student %d", ts.Output, ss.Output)
	case ts.IsSequence() && ts.Task != ss.Task:
		return fmt.Errorf("distill: the teacher's task is %s, the student's %s", ts.Task, ss.Task)
	case ts.IsSequence() && ss.Vocab < ts.Vocab:
		return fmt.Errorf("distill: the student's vocab %d is smaller than the teacher's %d: it cannot read the teacher's token ids", ss.Vocab, ts.Vocab)
	}
	return nil
}

// softTargets runs the teacher on the trainer's current input and returns tg with the
// teacher's tempered probabilities (zero at padded positions) and, for unlabelled
// distillation, no classes.
func (t *Trainer) softTargets(tg model.Targets) (model.Targets, error) {
	d := t.distill
	out, err := d.teacher.Forward(&t.in)
	if err != nil {
		return tg, fmt.Errorf("distill: teacher: %w", err)
	}
	C := out.Cols
	d.soft = growFloat(d.soft, out.Rows*C)
	rowsPerExample := out.Rows / t.in.B
	for r := range out.Rows {
		p := d.soft[r*C : (r+1)*C]
		if rowsPerExample > 1 && t.in.Lengths != nil && r%rowsPerExample >= int(t.in.Lengths[r/rowsPerExample]) {
			clear(p) // a padded position: no target
			continue
		}
		z := out.Row(r)
		mx := math.Inf(-1)
		for _, v := range z {
			mx = max(mx, v)
		}
		sum := 0.0
		for j, v := range z {
			p[j] = math.Exp((v - mx) / d.cfg.Temperature)
			sum += p[j]
		}
		for j := range p {
			p[j] /= sum
		}
	}
	tg.Soft, tg.Temperature, tg.SoftWeight = d.soft, d.cfg.Temperature, d.cfg.Alpha
	if d.cfg.Unlabeled || len(tg.Class) != out.Rows {
		if cap(d.class) < out.Rows {
			d.class = make([]int32, out.Rows)
		}
		d.class = d.class[:out.Rows]
		for i := range d.class {
			d.class[i] = -1
		}
		tg.Class = d.class
	}
	return tg, nil
}

func growFloat(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// Distill trains student to imitate teacher on ds (Hinton et al. 2015) with the schedule of
// cfg (plain SGD or, with cfg.DP and EnableDP on a Trainer, DP-SGD) and evaluates on test
// (when not nil) after every epoch. It is what `confide model distill` runs, and the
// server-side step a federation's operator can run after the last round: the teacher is
// the global model (a checkpoint), ds a public dataset read with d.Unlabeled, so no
// client's data is touched; the student is then a function of the teacher and public data
// alone and keeps the teacher's differential-privacy guarantees (post-processing, Dwork &
// Roth 2014, Prop. 2.1). Distilling on the clients' own data, or on labels derived from
// it, is not covered by them.
func Distill(ctx context.Context, teacher, student *model.Model, ds, test *data.Dataset, cfg Config, d DistillConfig, onEpoch func(EpochReport), onStep func(int)) ([]EpochReport, error) {
	tr, err := New(student, cfg)
	if err != nil {
		return nil, err
	}
	if err := tr.Distill(teacher, d); err != nil {
		return nil, err
	}
	return tr.Fit(ctx, ds, test, onEpoch, onStep)
}
