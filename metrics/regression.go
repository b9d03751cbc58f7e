package metrics

import (
	"fmt"
	"math"
)

// Regression accumulates the predictions of a regression model: sums from which MSE,
// RMSE, MAE and R² follow. Every field is a plain sum over examples, so the sums of
// several parties (clients of a federation, workers) add: RegressionSums.Add, then Report.
// It is not safe for concurrent use.
type Regression struct {
	RegressionSums
}

// RegressionSums are the sums a Regression keeps, over n values (one per example and
// target): the squared and absolute errors, and the targets and their squares (for R²'s
// total sum of squares).
type RegressionSums struct {
	N                int64   `json:"n"`
	SquaredError     float64 `json:"squared_error"`
	AbsoluteError    float64 `json:"absolute_error"`
	Target, TargetSq float64 `json:"-"`
}

// Add adds the sums of another accumulator.
func (s *RegressionSums) Add(o RegressionSums) {
	s.N += o.N
	s.SquaredError += o.SquaredError
	s.AbsoluteError += o.AbsoluteError
	s.Target += o.Target
	s.TargetSq += o.TargetSq
}

// Add records one prediction and its target (in the units errors are to be reported in).
func (r *Regression) Add(prediction, target float64) error {
	if math.IsNaN(prediction) || math.IsInf(prediction, 0) || math.IsNaN(target) || math.IsInf(target, 0) {
		return fmt.Errorf("metrics: prediction %v or target %v is not finite", prediction, target)
	}
	e := prediction - target
	r.N++
	r.SquaredError += e * e
	r.AbsoluteError += math.Abs(e)
	r.Target += target
	r.TargetSq += target * target
	return nil
}

// RegressionReport holds a regression model's errors.
type RegressionReport struct {
	Examples int64   `json:"examples"`
	MSE      float64 `json:"mse"`
	RMSE     float64 `json:"rmse"`
	MAE      float64 `json:"mae"`
	// R2 is the coefficient of determination 1 − SSE/SST, SST = Σ(y − ȳ)² (scikit-learn's
	// r2_score): 1 for perfect predictions, 0 for predicting the mean, negative for worse.
	// Constant targets (SST = 0) give 1 when the predictions are exact and 0 otherwise, as
	// r2_score does with force_finite.
	R2 float64 `json:"r2"`
}

// Report returns the errors of the sums (zero values without examples).
func (s RegressionSums) Report() RegressionReport {
	if s.N == 0 {
		return RegressionReport{}
	}
	n := float64(s.N)
	mse := s.SquaredError / n
	// SST = Σy² − (Σy)²/n, clamped: rounding can make a tiny SST negative.
	sst := max(0, s.TargetSq-s.Target*s.Target/n)
	r2 := 0.0
	switch {
	case sst > 0:
		r2 = 1 - s.SquaredError/sst
	case s.SquaredError == 0:
		r2 = 1
	}
	return RegressionReport{Examples: s.N, MSE: mse, RMSE: math.Sqrt(mse), MAE: s.AbsoluteError / n, R2: r2}
}
