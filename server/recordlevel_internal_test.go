package server

import (
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
)

// TestRecordLevelAccountant: the server's record-level account of a client's fit tasks
// uses dp.accountant.
func TestRecordLevelAccountant(t *testing.T) {
	d := DPConfig{NoiseMultiplier: 1.1, Delta: 1e-5, SampleRate: 0.01, Steps: 300}
	for _, name := range []string{"", "rdp", "prv"} {
		d.Accountant = name
		a := newRecordLevel(d)
		var eps float64
		for round := uint64(1); round <= 3; round++ {
			var err error
			if eps, _, err = a.issued("c", round); err != nil {
				t.Fatal(err)
			}
		}
		m, _ := accountant.ParseMethod(name)
		want, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 900}}, 1e-5, accountant.Config{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if eps != want.Epsilon || a.max != eps {
			t.Errorf("dp.accountant %q: ε after 3 tasks %v (max %v), want %v", name, eps, a.max, want.Epsilon)
		}
	}
}
