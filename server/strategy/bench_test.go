package strategy

import (
	"fmt"
	"testing"
)

func BenchmarkAggregateFit(b *testing.B) {
	const dim, clients = 100_000, 100
	ups := make([]ClientUpdate, clients)
	for i := range ups {
		d := make([]float64, dim)
		for j := range d {
			d[j] = float64((i*j)%7) * 1e-3
		}
		ups[i] = ClientUpdate{ClientID: fmt.Sprint(i), Delta: d, Weight: 1}
	}
	global := make([]float64, dim)
	for _, s := range []Strategy{&FedAvg{}, NewAdaptive(Adam, 0.1, 0.9, 0.99, 1e-3), &FedMedian{}} {
		b.Run(s.Name(), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.AggregateFit(1, global, FitResults{Updates: ups}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
