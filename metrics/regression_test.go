package metrics

import (
	"math"
	"testing"
)

func TestRegressionReport(t *testing.T) {
	// Reference: scikit-learn's mean_squared_error, mean_absolute_error and r2_score on
	// y = [3, −0.5, 2, 7], ŷ = [2.5, 0, 2, 8] (their documentation's example): MSE 0.375,
	// MAE 0.5, R² 0.9486081370449679.
	var r Regression
	for i, y := range []float64{3, -0.5, 2, 7} {
		if err := r.Add([]float64{2.5, 0, 2, 8}[i], y); err != nil {
			t.Fatal(err)
		}
	}
	got := r.Report()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"MSE", got.MSE, 0.375}, {"RMSE", got.RMSE, math.Sqrt(0.375)}, {"MAE", got.MAE, 0.5}, {"R2", got.R2, 0.9486081370449679}} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The sums of two halves add up to the whole.
	var a, b Regression
	_ = a.Add(2.5, 3)
	_ = a.Add(0, -0.5)
	_ = b.Add(2, 2)
	_ = b.Add(8, 7)
	a.RegressionSums.Add(b.RegressionSums)
	if h := a.Report(); math.Abs(h.R2-got.R2) > 1e-12 || h.Examples != 4 {
		t.Errorf("summed halves give %+v, want %+v", h, got)
	}
	if err := r.Add(math.NaN(), 1); err == nil {
		t.Error("a NaN prediction was accepted")
	}
	var c Regression
	_ = c.Add(1, 1)
	_ = c.Add(1, 1)
	if got := c.Report().R2; got != 1 {
		t.Errorf("constant targets predicted exactly: R² %v, want 1", got)
	}
}
