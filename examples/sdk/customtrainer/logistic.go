package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/dp/dpsgd"
)

// logistic is a model Confide knows nothing of: binary logistic regression written by
// hand, p(y = 1 | x) = σ(w·x + b), its parameters the flat vector [w, b] that the
// federation averages (the server's model spec only fixes its length: mlp, input d,
// output 1). It computes each example's gradient of the log-loss itself.
type logistic struct{ dim int }

func (m logistic) predict(params, x []float64) float64 {
	z := params[m.dim]
	for j, v := range x {
		z += params[j] * v
	}
	return 1 / (1 + math.Exp(-z))
}

// gradient writes ∂ log-loss / ∂[w, b] of one example into g: (p − y)·[x, 1].
func (m logistic) gradient(g, params, x []float64, y float64) {
	e := m.predict(params, x) - y
	for j, v := range x {
		g[j] = e * v
	}
	g[m.dim] = e
}

// trainer is a client.Trainer with its own model and training loop that takes DP-SGD, the
// privacy ledger and secure aggregation from Confide's reusable pieces:
//
//   - dpsgd.PoissonSample draws each step's batch (with a secure generator),
//   - dpsgd.Gradients clips every example's gradient and adds the calibrated noise,
//   - client.PrivacyAccount refuses tasks over budget and charges the ledger before the
//     parameters leave Fit,
//   - client.Run (its Party) clips, encrypts and uploads the update under the committee's
//     key: the trainer never sees secure aggregation at all.
type trainer struct {
	*client.PrivacyAccount // Ledger, ChargeStatistics, Close
	model                  logistic
	x                      [][]float64
	y                      []float64
	testX                  [][]float64
	testY                  []float64
	sampler                *rand.Rand
	noise                  dpsgd.Noise
	lr                     float64 // its own learning rate: the loop is the trainer's
}

var _ client.Trainer = (*trainer)(nil)

func newTrainer(account *client.PrivacyAccount, lr float64, x [][]float64, y []float64, testX [][]float64, testY []float64) (*trainer, error) {
	sampler, err := dp.SecureRand()
	if err != nil {
		return nil, err
	}
	noise, err := dp.NewSecureNoise()
	if err != nil {
		return nil, err
	}
	return &trainer{PrivacyAccount: account, model: logistic{dim: len(x[0])}, x: x, y: y, testX: testX, testY: testY, sampler: sampler, noise: noise, lr: lr}, nil
}

// Fit runs the server's DP-SGD schedule (cfg.DP: σ, C, sample rate q, steps) with plain
// SGD at the trainer's own learning rate.
func (t *trainer) Fit(ctx context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	if len(global) != t.model.dim+1 {
		return client.FitResult{}, client.TaskError(fmt.Errorf("the server's model has %d parameters, this logistic regression %d", len(global), t.model.dim+1))
	}
	s := cfg.DP
	step := accountant.Step{NoiseMultiplier: s.NoiseMultiplier, SampleRate: s.SampleRate, Steps: s.Steps}
	if err := t.Admit(s, step); err != nil {
		return client.FitResult{}, err
	}
	if s.SampleRate <= 0 || s.Steps <= 0 {
		return client.FitResult{}, client.TaskError(errors.New("the task has no DP-SGD schedule (sample rate, steps)"))
	}
	n := len(t.x)
	agg, err := dpsgd.NewGradients(len(global), t.noise, dpsgd.Config{
		NoiseMultiplier: s.NoiseMultiplier, MaxGradNorm: s.MaxGradNorm, ExpectedBatch: s.SampleRate * float64(n)})
	if err != nil {
		return client.FitResult{}, client.TaskError(err)
	}
	params := append([]float64(nil), global...)
	g := make([]float64, len(params))
	var batch []int
	for range s.Steps {
		if err := ctx.Err(); err != nil {
			return client.FitResult{}, err
		}
		batch = dpsgd.PoissonSample(batch[:0], n, s.SampleRate, t.sampler)
		for _, i := range batch {
			t.model.gradient(g, params, t.x[i], t.y[i])
			if err := agg.Add(g); err != nil {
				return client.FitResult{}, err
			}
		}
		if _, err := agg.Release(g); err != nil {
			return client.FitResult{}, err
		}
		for j := range params {
			params[j] -= t.lr * g[j]
		}
	}
	metrics := map[string]float64{}
	if t.Ledger() != nil {
		// Charged before the parameters leave this function.
		if metrics["epsilon"], err = t.Charge(ctx, step); err != nil {
			return client.FitResult{}, err
		}
	}
	return client.FitResult{Params: params, NumExamples: n, Metrics: metrics, Steps: s.Steps}, nil
}

// Evaluate reports the log-loss and accuracy of params on the local test rows (never the
// training rows).
func (t *trainer) Evaluate(_ context.Context, params []float64, _ client.EvaluateConfig) (client.EvaluateResult, error) {
	if len(t.testX) == 0 {
		return client.EvaluateResult{}, client.TaskError(errors.New("no local test set"))
	}
	loss, correct := 0.0, 0
	for i, x := range t.testX {
		p := min(max(t.model.predict(params, x), 1e-12), 1-1e-12)
		if t.testY[i] == 1 {
			loss -= math.Log(p)
		} else {
			loss -= math.Log(1 - p)
		}
		if (p >= 0.5) == (t.testY[i] == 1) {
			correct++
		}
	}
	n := float64(len(t.testX))
	return client.EvaluateResult{NumExamples: len(t.testX), Loss: loss / n, Metrics: map[string]float64{"accuracy": float64(correct) / n}}, nil
}

// syntheticData draws n labelled points of a client: two Gaussian classes in dim
// dimensions whose centres are ±shift·(1, …, 1), shifted by the client's own offset (the
// clients' data differ).
func syntheticData(n, dim int, client uint64, seed uint64) (x [][]float64, y []float64) {
	rng := rand.New(rand.NewPCG(seed, client))
	offset := 0.3 * rng.NormFloat64()
	for range n {
		label := float64(rng.IntN(2))
		row := make([]float64, dim)
		for j := range row {
			row[j] = (2*label-1)*0.8 + offset + rng.NormFloat64()
		}
		x, y = append(x, row), append(y, label)
	}
	return x, y
}
