package data

import (
	"errors"
	"fmt"
	"math"
)

// Standardizer rescales each feature to zero mean and unit variance, with statistics
// fitted on one dataset (the training set) and applied to others (the test set), so no
// statistic leaks from test to train.
type Standardizer struct {
	Mean []float64
	Std  []float64 // population standard deviation; 1 for a constant feature
}

// FitStandardizer computes per-feature means and standard deviations of d's dense
// features. A constant feature gets Std 1, so it maps to 0 rather than dividing by 0.
func FitStandardizer(d *Dataset) (*Standardizer, error) {
	if err := checkDense("FitStandardizer", d); err != nil {
		return nil, err
	}
	s := &Standardizer{Mean: make([]float64, d.Dim), Std: make([]float64, d.Dim)}
	for i := 0; i < d.N; i++ {
		for j, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			s.Mean[j] += v
		}
	}
	for j := range s.Mean {
		s.Mean[j] /= float64(d.N)
	}
	// Two passes: the textbook one-pass formula loses precision when |mean| ≫ std.
	for i := 0; i < d.N; i++ {
		for j, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			e := v - s.Mean[j]
			s.Std[j] += e * e
		}
	}
	for j := range s.Std {
		s.Std[j] = math.Sqrt(s.Std[j] / float64(d.N))
		if s.Std[j] == 0 {
			s.Std[j] = 1
		}
	}
	return s, nil
}

// Apply returns a copy of d with every feature standardised: (x − Mean) / Std. Its
// Normalization composes d's with the standardisation.
func (s *Standardizer) Apply(d *Dataset) (*Dataset, error) {
	if err := checkScalerFit("Standardizer", d, len(s.Mean), len(s.Std)); err != nil {
		return nil, err
	}
	out := copyAll(d)
	for i := 0; i < out.N; i++ {
		row := out.X[i*out.Dim : (i+1)*out.Dim]
		for j := range row {
			row[j] = (row[j] - s.Mean[j]) / s.Std[j]
		}
	}
	out.Normalization = d.Normalization.then(s.Mean, s.Std, d.Dim)
	return out, nil
}

// MinMaxScaler rescales each feature linearly so that the fitted dataset spans [0, 1].
// Values of other datasets outside the fitted range map outside [0, 1]; they are not
// clipped. (8-bit images need no fit: the image loaders divide by 255.)
type MinMaxScaler struct {
	Min []float64
	Max []float64
}

// FitMinMax computes per-feature minima and maxima of d's dense features.
func FitMinMax(d *Dataset) (*MinMaxScaler, error) {
	if err := checkDense("FitMinMax", d); err != nil {
		return nil, err
	}
	s := &MinMaxScaler{Min: make([]float64, d.Dim), Max: make([]float64, d.Dim)}
	copy(s.Min, d.X[:d.Dim])
	copy(s.Max, d.X[:d.Dim])
	for i := 1; i < d.N; i++ {
		for j, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			s.Min[j] = min(s.Min[j], v)
			s.Max[j] = max(s.Max[j], v)
		}
	}
	return s, nil
}

// Apply returns a copy of d with every feature mapped by (x − Min) / (Max − Min); a
// feature constant in the fitted data maps to x − Min. Its Normalization composes d's
// with the scaling.
func (s *MinMaxScaler) Apply(d *Dataset) (*Dataset, error) {
	if err := checkScalerFit("MinMaxScaler", d, len(s.Min), len(s.Max)); err != nil {
		return nil, err
	}
	out := copyAll(d)
	for i := 0; i < out.N; i++ {
		row := out.X[i*out.Dim : (i+1)*out.Dim]
		for j := range row {
			r := s.Max[j] - s.Min[j]
			if r == 0 {
				r = 1
			}
			row[j] = (row[j] - s.Min[j]) / r
		}
	}
	ranges := make([]float64, d.Dim)
	for j := range ranges {
		if ranges[j] = s.Max[j] - s.Min[j]; ranges[j] == 0 {
			ranges[j] = 1
		}
	}
	out.Normalization = d.Normalization.then(s.Min, ranges, d.Dim)
	return out, nil
}

func checkDense(op string, d *Dataset) error {
	if d == nil || d.X == nil || d.Dim <= 0 {
		return fmt.Errorf("data: %s: needs a dataset with dense features (X, Dim)", op)
	}
	if d.N == 0 {
		return fmt.Errorf("data: %s: dataset %s is empty; fit on the training set", op, d.Name)
	}
	if len(d.X) != d.N*d.Dim {
		return fmt.Errorf("data: %s: dataset %s has len(X) = %d, want N×Dim = %d", op, d.Name, len(d.X), d.N*d.Dim)
	}
	return nil
}

func checkScalerFit(op string, d *Dataset, a, b int) error {
	if a == 0 || a != b {
		return errors.New("data: " + op + " is not fitted; create it with its Fit function")
	}
	if d == nil || d.X == nil || d.Dim <= 0 || len(d.X) != d.N*d.Dim {
		return fmt.Errorf("data: %s.Apply: needs a dataset with dense features (X, Dim)", op)
	}
	if d.Dim != a {
		return fmt.Errorf("data: %s.Apply: dataset %s has %d features, the scaler was fitted on %d", op, d.Name, d.Dim, a)
	}
	return nil
}

// copyAll returns a deep copy of d.
func copyAll(d *Dataset) *Dataset {
	idx := make([]int, d.N)
	for i := range idx {
		idx[i] = i
	}
	return d.Subset(idx)
}
