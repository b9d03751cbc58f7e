package secagg

import (
	"fmt"
	"testing"
)

// Benchmarks at the default parameters (LogN 14, one 60-bit prime) on d = 100,000 values
// (7 ciphertexts), K = 10, t = 6. `confide bench secagg` runs the same steps at d = 10^6 and
// compares the sum with plaintext float64 addition.

const benchDim = 100_000

var benchCommittee = CommitteeConfig{Size: 10, Threshold: 6, MinContributions: 2}

func benchFederation(b *testing.B, workers int) *federation {
	p, err := NewParameters(ParametersLiteral{})
	if err != nil {
		b.Fatal(err)
	}
	return newFederation(b, p, benchCommittee, workers)
}

func BenchmarkEncrypt(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("d=%d/workers=%d", benchDim, workers), func(b *testing.B) {
			f := benchFederation(b, 1)
			enc, err := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c", Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			u := randomUpdates(1, 1, benchDim, 1)[0]
			b.SetBytes(8 * benchDim)
			for b.Loop() {
				if _, err := enc.EncryptUpdate(1, u, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalUpdate(b *testing.B) {
	f := benchFederation(b, 1)
	enc, _ := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c"})
	u, err := enc.EncryptUpdate(1, randomUpdates(1, 1, benchDim, 1)[0], 1)
	if err != nil {
		b.Fatal(err)
	}
	blob, _ := u.MarshalBinary()
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		var v EncryptedUpdate
		if err := v.UnmarshalBinary(blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAggregate measures Aggregator.Add of one upload into the running sums.
func BenchmarkAggregate(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("d=%d/workers=%d", benchDim, workers), func(b *testing.B) {
			f := benchFederation(b, 1)
			enc, _ := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c"})
			u, err := enc.EncryptUpdate(1, randomUpdates(1, 1, benchDim, 1)[0], 1)
			if err != nil {
				b.Fatal(err)
			}
			p := f.params
			p.lit.MaxContributors = 1 << 30 // b.N adds of one upload; the sum may wrap, the timing does not change
			agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: benchDim, Committee: benchCommittee, Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(8 * benchDim)
			i := 0
			for b.Loop() {
				v := *u
				v.ClientID = fmt.Sprint(i)
				i++
				if err := agg.Add(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlaintextSum is the reference for BenchmarkAggregate: adding one float64 vector.
func BenchmarkPlaintextSum(b *testing.B) {
	u := randomUpdates(1, 1, benchDim, 1)[0]
	acc := make([]float64, benchDim)
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		for j, x := range u {
			acc[j] += x
		}
	}
}

// BenchmarkDecryptionShare measures one member's shares for a d = 100,000 aggregate.
func BenchmarkDecryptionShare(b *testing.B) {
	f := benchFederation(b, 1)
	agg, _ := smallRound(b, f, 1, 2, benchDim)
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 3, 4, 5, 6})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		if _, err := f.members[0].DecryptionShare(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecrypt measures Combine: adding t = 6 shares and decoding a d = 100,000 sum.
func BenchmarkDecrypt(b *testing.B) {
	f := benchFederation(b, 1)
	agg, _ := smallRound(b, f, 1, 2, benchDim)
	req, err := agg.DecryptionRequest([]MemberID{5, 6, 7, 8, 9, 10})
	if err != nil {
		b.Fatal(err)
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.members[id-1].DecryptionShare(req)
		if err != nil {
			b.Fatal(err)
		}
		shares = append(shares, s)
	}
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		if _, err := agg.Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeySetup measures the whole in-memory key setup of a K = 10, t = 6 committee.
func BenchmarkKeySetup(b *testing.B) {
	p, _ := NewParameters(ParametersLiteral{})
	for b.Loop() {
		newFederation(b, p, benchCommittee, 1)
	}
}
