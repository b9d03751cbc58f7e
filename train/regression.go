package train

import (
	"fmt"

	"github.com/confide-fl/confide/data"
	quality "github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// checkRegression reports whether a model of spec s fits a regression dataset ds: one
// output per target, trained with the MSE loss.
func checkRegression(s model.Spec, ds *data.Dataset) error {
	if ds.Task != data.TaskRegress {
		return nil
	}
	if s.Loss != model.LossMSE {
		return fmt.Errorf("dataset %s has real-valued targets: the model needs loss: mse (it has %q)", ds.Name, s.Loss)
	}
	if s.Output != ds.NumValues {
		return fmt.Errorf("model output %d ≠ dataset %s target count %d", s.Output, ds.Name, ds.NumValues)
	}
	return nil
}

// evaluateRegression is evaluate on a regression dataset: the mean loss (the MSE on the
// targets as trained, i.e. standardised) and the errors in the targets' own units
// (ds.ValueNormalization undone).
func evaluateRegression(m *model.Model, ds *data.Dataset, batchSize int, transformed bool) (Metrics, error) {
	var (
		b       data.Batch
		in      model.Input
		r       quality.Regression
		lossSum float64
	)
	k := ds.NumValues
	mean, std := make([]float64, k), make([]float64, k)
	for j := range k {
		mean[j], std[j] = 0, 1
		if n := ds.ValueNormalization; n != nil {
			mean[j], std[j] = n.Mean[min(j, len(n.Mean)-1)], n.Std[min(j, len(n.Std)-1)]
		}
	}
	idx := make([]int, 0, batchSize)
	for start := 0; start < ds.N; start += batchSize {
		idx = idx[:0]
		for i := start; i < min(start+batchSize, ds.N); i++ {
			idx = append(idx, i)
		}
		ds.Gather(&b, idx)
		Input(ds, &b, &in)
		in.Transformed = transformed
		out, err := m.Forward(&in)
		if err != nil {
			return Metrics{}, err
		}
		if len(out.Data) != len(b.Values) {
			return Metrics{}, fmt.Errorf("train: the model gives %d outputs for %d targets", len(out.Data), len(b.Values))
		}
		for i := range idx {
			se := 0.0
			for j := range k {
				p, y := out.Data[i*k+j], b.Values[i*k+j]
				se += (p - y) * (p - y)
				if err := r.Add(p*std[j]+mean[j], y*std[j]+mean[j]); err != nil {
					return Metrics{}, fmt.Errorf("train: example %d: %w", start+i, err)
				}
			}
			lossSum += se / float64(k) // model.MSE: the mean over an example's outputs
		}
	}
	rep := r.Report()
	return Metrics{Loss: lossSum / float64(max(ds.N, 1)), Examples: ds.N, Regression: &rep}, nil
}
