package secaggbench

import (
	"testing"
	"testing/cryptotest"
)

func TestRunSmall(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	r, err := Run(Config{Dim: 5000, Clients: 12, Committee: 5, Threshold: 3, Absent: 2, LogN: 12, Distinct: 3, Workers: 2, Seed: 1, Encoding: "float"})
	if err != nil {
		t.Fatal(err)
	}
	if r.MaxAbsError > 1e-3 || r.DecryptedCount != 12 {
		t.Errorf("max error %g, count %d", r.MaxAbsError, r.DecryptedCount)
	}
	if r.Chunks != 2 || r.UploadRatio < 2 || r.UploadRatio > 3.5 {
		t.Errorf("chunks %d upload ratio %g", r.Chunks, r.UploadRatio)
	}
	if _, ok := processCPU(); ok && (!(r.PlaintextVerifiedCPUSec > 0) || r.SumRatioCPUVerified != r.ServerSumCPUSec/r.PlaintextVerifiedCPUSec) {
		t.Errorf("verified plaintext sum CPU %g s, ratio %g, want positive and the server sum's CPU %g s over it", r.PlaintextVerifiedCPUSec, r.SumRatioCPUVerified, r.ServerSumCPUSec)
	}
	for name, v := range map[string]float64{"encrypt": r.ClientEncryptSec, "sum": r.ServerSumSec, "sum-decoded": r.ServerSumDecodedSec, "plain": r.PlaintextSumSec, "decrypt": r.DecryptSec} {
		if !(v > 0) {
			t.Errorf("%s time %g not positive", name, v)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Dim: 0, Clients: 1, Committee: 3, Threshold: 2, Distinct: 1, Workers: 1},
		{Dim: 1, Clients: 0, Committee: 3, Threshold: 2, Distinct: 1, Workers: 1},
		{Dim: 1, Clients: 1, Committee: 3, Threshold: 2, Absent: 2, Distinct: 1, Workers: 1},
		{Dim: 1, Clients: 1, Committee: 3, Threshold: 2, Distinct: 0, Workers: 1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := Run(Config{Dim: 10, Clients: 100_000, Committee: 3, Threshold: 2, Distinct: 1, Workers: 1, LogN: 12, Encoding: "float"}); err == nil {
		t.Error("100,000 clients accepted despite the overflow budget")
	}
}

// TestRunPacked: the packed encoding (the default), at a size that fills its one
// ciphertext, uploads fewer bytes than raw float64, measures its error on independent
// clients within the rounding's hard bound (each client's rounding is under one step), and
// reports its layout.
func TestRunPacked(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2)
	r, err := Run(Config{Dim: 57000, Clients: 12, Committee: 5, Threshold: 3, Absent: 2, LogN: 13, Distinct: 3, Workers: 2, Seed: 1, ErrorClients: 12})
	if err != nil {
		t.Fatal(err)
	}
	if r.Encoding != "packed" || r.Primes < 2 || r.ValueBits < 1 || r.PerCoeff < 2 {
		t.Errorf("layout: encoding %q, %d primes, %d bits, %d per coefficient", r.Encoding, r.Primes, r.ValueBits, r.PerCoeff)
	}
	if r.UploadRatio >= 1 || r.BytesPerVal != float64(r.UploadBytes)/57000 {
		t.Errorf("upload ratio %g, %g bytes per value", r.UploadRatio, r.BytesPerVal)
	}
	if r.ErrorClients != 12 || r.DecryptedCount != 12 || r.MaxAbsError >= 12*r.QuantStep || r.MaxAbsErrorMean != r.MaxAbsError/12 {
		t.Errorf("error %g (mean %g) over %d clients, step %g, count %d", r.MaxAbsError, r.MaxAbsErrorMean, r.ErrorClients, r.QuantStep, r.DecryptedCount)
	}
	if _, err := Run(Config{Dim: 10, Clients: 3, Committee: 3, Threshold: 2, Distinct: 1, Workers: 1, LogN: 13, ValueBits: 8, Encoding: "float"}); err == nil {
		t.Error("--value-bits with --encoding float accepted")
	}
}

// TestVerifiedPlaintextSum: the plaintext baseline that checks signatures sums what the
// plain loop sums, and refuses a vector changed after it was signed.
func TestVerifiedPlaintextSum(t *testing.T) {
	vecs := [][]float64{{1, 2, 3}, {0.5, -1, 4}}
	pub, sigs := signVectors(vecs)
	acc := make([]float64, 3)
	if err := verifiedPlaintextSum(acc, vecs, sigs, pub, 5); err != nil {
		t.Fatal(err)
	}
	if want := []float64{4, 4, 17}; acc[0] != want[0] || acc[1] != want[1] || acc[2] != want[2] {
		t.Errorf("sum of 5 uploads cycling through 2 vectors = %v, want %v", acc, want)
	}
	vecs[1][2] = 5
	if err := verifiedPlaintextSum(acc, vecs, sigs, pub, 2); err == nil {
		t.Error("a vector changed after it was signed was added")
	}
}
