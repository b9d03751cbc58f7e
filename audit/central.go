package audit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/dp/dpsgd"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// Central is an audit of centralised training (package train), with or without DP-SGD.
type Central struct {
	Mode       Mode
	Canaries   int
	Confidence float64
	// Delta is the δ at which the bound is computed (the one ε is claimed at).
	Delta float64
	// Train is the training run audited; Train.DP nil audits training without DP.
	Train train.Config
	// CanaryNorm is a gradient canary's norm: the clip norm C under DP-SGD (the largest an
	// example's clipped gradient can have); without DP any positive value.
	CanaryNorm float64
	// Seed drives the audit's own draws: which canaries are included, which rows or
	// coordinates they take, which steps sample them. They are independent of the
	// mechanism's noise, which stays whatever Sources supplies.
	Seed uint64
}

// Sources are the mechanism's randomness and progress callbacks.
type Sources struct {
	// Noise and Sampler are DP-SGD's noise and batch sampler (train.Trainer.EnableDP):
	// cryptographically secure outside tests. Required when Train.DP is set.
	Noise   dpsgd.Noise
	Sampler *rand.Rand
	// OnExamples, when not nil, is called as training processes examples.
	OnExamples func(int)
}

// CentralResult is what an audit of centralised training found.
type CentralResult struct {
	Bound Bound
	// Steps is the DP-SGD accounting history of the run (nil without DP), from which the
	// claimed ε follows.
	Steps []accountant.Step
	// Trainer holds the trained model (and the features it computed), for evaluating it.
	Trainer *train.Trainer
	// TrainExamples were trained on (black-box: including the included canaries).
	TrainExamples int
	// QuietCanaries counts the white-box canaries whose coordinate had no data gradient
	// at all (the rest compete with some).
	QuietCanaries int
	// Updates is the number of released updates a white-box auditor saw.
	Updates int
}

// validate checks the audit's own settings.
func (c Central) validate() error {
	var errs []error
	if _, err := ParseMode(string(c.Mode)); err != nil {
		errs = append(errs, err)
	}
	if c.Canaries < 1 {
		errs = append(errs, fmt.Errorf("canaries = %d: must be ≥ 1", c.Canaries))
	}
	if !(c.Confidence > 0 && c.Confidence < 1) {
		errs = append(errs, fmt.Errorf("confidence = %v: must be in (0, 1)", c.Confidence))
	}
	if !(c.Delta >= 0 && c.Delta < 1) {
		errs = append(errs, fmt.Errorf("delta = %v: must be in [0, 1)", c.Delta))
	}
	if c.Mode == WhiteBox && !(c.CanaryNorm > 0) {
		errs = append(errs, fmt.Errorf("canary norm = %v: must be > 0", c.CanaryNorm))
	}
	if d := c.Train.DP; d != nil && c.Mode == WhiteBox && d.Clipping == dpsgd.ClipPerLayer {
		// A per-layer clipped example reaches norm C only with C_l in every layer; a
		// one-coordinate canary would be a weaker one than the accountant covers.
		errs = append(errs, fmt.Errorf("white-box canaries are audited with flat clipping; per-layer clipping needs canaries spanning every layer"))
	}
	return errors.Join(errs...)
}

// RunCentral trains m on trainSet as c.Train says, with canaries planted as c.Mode says,
// and returns the bound the canaries' scores give. m is trained in place.
//
// White-box: c.Canaries Dirac gradient canaries on the model's quietest coordinates
// (QuietCoordinates at the initial parameters), each included with probability ½ and then
// sampled into steps at the training's sample rate; the score is the sum of the released
// updates at the canary's coordinate (GradientCanaries). Black-box: c.Canaries training
// examples relabelled at random (InputCanaries), the included ones trained on; the score
// is the final model's log-odds of the canary label.
func RunCentral(ctx context.Context, m *model.Model, trainSet *data.Dataset, c Central, src Sources) (*CentralResult, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x6175646974))
	tr, err := train.New(m, c.Train)
	if err != nil {
		return nil, err
	}
	res := &CentralResult{Trainer: tr}
	fit := trainSet
	var (
		inputs   *InputCanaries
		gradient *GradientCanaries
	)
	switch c.Mode {
	case BlackBox:
		if inputs, err = NewInputCanaries(trainSet, c.Canaries, rng); err != nil {
			return nil, err
		}
		fit = inputs.TrainingSet(trainSet)
	case WhiteBox:
		probe, err := tr.Featurize(ctx, trainSet, nil)
		if err != nil {
			return nil, err
		}
		coords, quiet, err := QuietCoordinates(ctx, m, probe, m.Features() != nil, c.Canaries, rng)
		if err != nil {
			return nil, err
		}
		res.QuietCanaries = quiet
		gradient = &GradientCanaries{
			Base: tr.Opt, Coordinates: coords, Included: DrawInclusion(c.Canaries, rng),
			Sampler: rand.New(rand.NewPCG(c.Seed, 0x73616d706c65)),
		}
		// Without DP the update is the mean gradient of a shuffled batch, and every
		// example is in one batch of each epoch; under DP-SGD the noisy clipped sum over
		// the expected batch, each example sampled at rate q.
		batch := max(c.Train.BatchSize, 1)
		if c.Train.DP != nil {
			gradient.SampleRate = c.Train.PlannedDPSteps(trainSet.N, 1).SampleRate
		} else {
			gradient.StepsPerEpoch = (trainSet.N + batch - 1) / batch
		}
		gradient.Magnitude = c.CanaryNorm / float64(batch)
		tr.Opt = gradient
	}
	if c.Train.DP != nil {
		if src.Noise == nil || src.Sampler == nil {
			return nil, errors.New("audit: DP-SGD needs a noise source and a batch sampler")
		}
		if err := tr.EnableDP(src.Noise, src.Sampler); err != nil {
			return nil, err
		}
	}
	if _, err := tr.Fit(ctx, fit, nil, nil, src.OnExamples); err != nil {
		return nil, err
	}
	res.TrainExamples = fit.N
	res.Steps = tr.DPSteps()
	var scores []float64
	var included []bool
	if inputs != nil {
		if scores, err = inputs.Scores(ctx, m, trainSet); err != nil {
			return nil, err
		}
		included = inputs.Included
	} else {
		scores, included = gradient.Scores(), gradient.Included
		res.Updates = gradient.Steps()
	}
	if res.Bound, err = Evaluate(scores, included, c.Delta, c.Confidence); err != nil {
		return nil, err
	}
	return res, nil
}
