package secagg

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

func TestNewParameters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lit     ParametersLiteral
		wantErr string // empty: valid
	}{
		{"defaults", ParametersLiteral{}, ""},
		{"LogN 16", ParametersLiteral{LogN: 16}, ""},
		{"LogN too small", ParametersLiteral{LogN: 11}, "LogN 11"},
		{"LogN too large", ParametersLiteral{LogN: 17}, "LogN 17"},
		{"LogQ too large", ParametersLiteral{LogQ: 61}, "LogQ 61"},
		{"LogScale above LogQ-4", ParametersLiteral{LogQ: 50, LogScale: 47}, "LogScale 47"},
		{"flooding too small", ParametersLiteral{FloodingSigma: 1000}, "FloodingSigma"},
		{"flooding NaN", ParametersLiteral{FloodingSigma: math.NaN()}, "FloodingSigma"},
		{"negative clip", ParametersLiteral{ClipBound: -1}, "ClipBound"},
		{"infinite weight", ParametersLiteral{MaxWeight: math.Inf(1)}, "MaxWeight"},
		{"negative contributors", ParametersLiteral{MaxContributors: -5}, "MaxContributors"},
		// 2^45 · 4096 · 4 = 2^59 > Q/2: one more contributor than the budget allows.
		{"overflow: too many contributors", ParametersLiteral{MaxContributors: 5000}, "overflow budget"},
		{"overflow: clip bound", ParametersLiteral{ClipBound: 10}, "overflow budget"},
		{"overflow: weights", ParametersLiteral{MaxWeight: 100, MaxContributors: 100}, "overflow budget"},
		{"smaller scale buys room", ParametersLiteral{LogScale: 40, MaxContributors: 100_000}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewParameters(tc.lit)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted; want an error about %s", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not name %s", err, tc.wantErr)
			}
		})
	}
}

// TestOverflowBudgetIsReal checks the budget against lattigo's actual wrap-around: a
// ciphertext holding the largest sum the default budget allows decrypts exactly, and one
// holding a sum just past Q/(2Δ) (the limit without margin) wraps.
func TestOverflowBudgetIsReal(t *testing.T) {
	p, err := NewParameters(ParametersLiteral{LogN: 12})
	if err != nil {
		t.Fatal(err)
	}
	wrapAt := float64(p.Modulus()) / 2 / p.scale()
	allowed := float64(p.lit.MaxContributors) * p.slotBound()
	if allowed*4 > wrapAt {
		t.Fatalf("budget allows |sum| %g, within 4× of the wrap-around at %g", allowed, wrapAt)
	}
	sk := rlwe.NewKeyGenerator(p.he).GenSecretKeyNew()
	enc := rlwe.NewEncryptor(p.he, sk)
	dec := rlwe.NewDecryptor(p.he, sk)
	ecd := hefloat.NewEncoder(p.he, 53)
	for _, tc := range []struct {
		sum   float64
		wraps bool
	}{{allowed, false}, {-allowed, false}, {wrapAt * 1.01, true}} {
		pt := hefloat.NewPlaintext(p.he, 0)
		pt.IsBatched = false
		if err := ecd.Encode([]float64{tc.sum}, pt); err != nil {
			t.Fatal(err)
		}
		ct := hefloat.NewCiphertext(p.he, 1, 0)
		if err := enc.Encrypt(pt, ct); err != nil {
			t.Fatal(err)
		}
		out := make([]float64, p.N())
		if err := ecd.Decode(dec.DecryptNew(ct), out); err != nil {
			t.Fatal(err)
		}
		if wrapped := math.Abs(out[0]-tc.sum) > 1; wrapped != tc.wraps {
			t.Errorf("sum %g decoded as %g (wraps=%v, want %v)", tc.sum, out[0], wrapped, tc.wraps)
		}
	}
}

func TestCommitteeConfigValidate(t *testing.T) {
	p, _ := NewParameters(ParametersLiteral{})
	for _, tc := range []struct {
		cfg CommitteeConfig
		ok  bool
	}{
		{CommitteeConfig{10, 6, 10}, true},
		{CommitteeConfig{2, 2, 2}, true},
		{CommitteeConfig{1, 1, 2}, false},
		{CommitteeConfig{0, 1, 2}, false},
		{CommitteeConfig{257, 6, 2}, false},
		{CommitteeConfig{10, 11, 2}, false},
		{CommitteeConfig{10, 0, 2}, false},
		{CommitteeConfig{10, 1, 2}, false}, // any single member could decrypt one update
		{CommitteeConfig{10, 5, 2}, false}, // two disjoint sets of 5 (TestAttackDisjointDecryptingSets)
		{CommitteeConfig{4, 2, 2}, false},
		{CommitteeConfig{3, 2, 2}, true},
		{CommitteeConfig{4, 3, 2}, true},
		{CommitteeConfig{10, 6, 0}, false},
		{CommitteeConfig{10, 6, 1}, false}, // an aggregate of one update is that update
		{CommitteeConfig{10, 6, 1001}, false},
	} {
		t.Run(fmt.Sprintf("%+v", tc.cfg), func(t *testing.T) {
			if err := tc.cfg.Validate(p); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestCommitteeConfigErrorsNameTheField: callers map the field names to their config keys.
func TestCommitteeConfigErrorsNameTheField(t *testing.T) {
	p, _ := NewParameters(ParametersLiteral{})
	for _, tc := range []struct {
		cfg  CommitteeConfig
		want string
	}{
		{CommitteeConfig{300, 6, 2}, "committee Size 300"},
		{CommitteeConfig{5, 1, 2}, "Threshold 1"},
		{CommitteeConfig{6, 3, 2}, "Threshold 3: must exceed half of committee Size 6 (at least 4)"},
		{CommitteeConfig{5, 3, 1}, "MinContributions 1"},
	} {
		if err := tc.cfg.Validate(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestMessageSizes: the predicted sizes of every message a committee member sends without a
// Signer are exact (TestAuthenticatedSizes checks the signed ones), so a server can refuse
// larger uploads before reading them.
func TestMessageSizes(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 21)
	p := testParams(t, ParametersLiteral{LogN: 4}) // N = 16
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	size := func(m binaryMessage) int {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	if got, want := size(f.members[0].Announcement()), p.AnnouncementBytes(); got != want {
		t.Errorf("announcement: %d bytes, predicted %d", got, want)
	}
	session := NewSessionID()
	ks, err := NewKeySetup(p, session, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var members []*Member
	for i := 1; i <= cfg.Size; i++ {
		m, err := NewMember(p, MemberConfig{Session: session, ID: MemberID(i), Committee: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddAnnouncement(m.Announcement()); err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	ro, err := ks.Roster()
	if err != nil {
		t.Fatal(err)
	}
	d, err := members[0].Deal(ro)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := size(d), p.DealingBytes(cfg.Size); got != want {
		t.Errorf("dealing: %d bytes, predicted %d", got, want)
	}
	for _, dim := range []int{1, 14, 15, 40} {
		agg, _ := smallRound(t, f, uint64(dim), 2, dim)
		req, err := agg.DecryptionRequest([]MemberID{1, 3})
		if err != nil {
			t.Fatal(err)
		}
		sh, err := f.members[0].DecryptionShare(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := size(sh), p.DecryptionShareBytes(dim, cfg.Threshold); got != want {
			t.Errorf("dim %d: decryption share of %d bytes, predicted %d", dim, got, want)
		}
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "client-7"})
		if err != nil {
			t.Fatal(err)
		}
		u, err := enc.EncryptUpdate(uint64(dim), make([]float64, dim), 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := size(u), p.UpdateBytes(dim, len("client-7")); got != want {
			t.Errorf("dim %d: update of %d bytes, predicted %d", dim, got, want)
		}
	}
}

func TestEncryptorRejectsBadUpdates(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 10)
	p := testParams(t, ParametersLiteral{LogN: 10, ClipBound: 2, MaxWeight: 0.5})
	f := newFederation(t, p, CommitteeConfig{Size: 2, Threshold: 2, MinContributions: 2}, 1)
	enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		update []float64
		weight float64
	}{
		{"empty", nil, 0.5},
		{"above clip bound", []float64{0, 2.01}, 0.5},
		{"NaN", []float64{math.NaN()}, 0.5},
		{"infinite", []float64{math.Inf(-1)}, 0.5},
		{"zero weight", []float64{1}, 0},
		{"weight above MaxWeight", []float64{1}, 0.51},
		{"NaN weight", []float64{1}, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := enc.EncryptUpdate(1, tc.update, tc.weight); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := enc.EncryptUpdate(1, []float64{-2, 2}, 0.5); err != nil {
		t.Errorf("values at the clip bound refused: %v", err)
	}
	if _, err := NewEncryptor(p, f.pk, EncryptorConfig{}); err == nil {
		t.Error("empty client id accepted")
	}
	other := testParams(t, ParametersLiteral{LogN: 10})
	if _, err := NewEncryptor(other, f.pk, EncryptorConfig{ClientID: "c"}); err == nil {
		t.Error("public key accepted under other parameters")
	}
}

// TestAggregatorRejectsMalformedUpdates feeds the aggregator updates that are wrong in one
// way each; every one must be refused and leave the aggregate intact.
func TestAggregatorRejectsMalformedUpdates(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 11)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	const dim = 1500
	agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: dim, Committee: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	u := randomUpdates(11, 1, dim, 1)[0]
	enc, _ := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "good"})
	good, err := enc.EncryptUpdate(1, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(good); err != nil {
		t.Fatal(err)
	}
	fresh := func() *EncryptedUpdate {
		enc, _ := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "bad"})
		v, err := enc.EncryptUpdate(1, u, 1)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		edit func(v *EncryptedUpdate)
	}{
		{"other session", func(v *EncryptedUpdate) { v.Session[3] ^= 1 }},
		{"other round", func(v *EncryptedUpdate) { v.Round = 2 }},
		{"duplicate client", func(v *EncryptedUpdate) { v.ClientID = "good" }},
		{"no client id", func(v *EncryptedUpdate) { v.ClientID = "" }},
		{"other dimension", func(v *EncryptedUpdate) { v.Dim = dim + 1 }},
		{"missing chunk", func(v *EncryptedUpdate) { v.chunks = v.chunks[:1] }},
		{"scale 2^46", func(v *EncryptedUpdate) { v.chunks[1].Scale = rlwe.NewScale(math.Exp2(46)) }},
		{"slot encoded", func(v *EncryptedUpdate) { v.chunks[0].IsBatched = true }},
		{"not NTT", func(v *EncryptedUpdate) { v.chunks[0].IsNTT = false }},
		{"Montgomery", func(v *EncryptedUpdate) { v.chunks[0].IsMontgomery = true }},
		{"degree 2", func(v *EncryptedUpdate) { v.chunks[1].Value = append(v.chunks[1].Value, ring.NewPoly(p.N(), 0)) }},
		{"level 1", func(v *EncryptedUpdate) { v.chunks[0].Value[1] = ring.NewPoly(p.N(), 1) }},
		{"ring degree", func(v *EncryptedUpdate) { v.chunks[0].Value[0] = ring.NewPoly(p.N()/2, 0) }},
		{"nil ciphertext", func(v *EncryptedUpdate) { v.chunks[1] = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := fresh()
			tc.edit(v)
			if err := agg.Add(v); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if agg.Count() != 1 {
		t.Fatalf("count %d after rejected updates, want 1", agg.Count())
	}
	// A second good update: the committee decrypts aggregates of m = 2 or more.
	enc2, _ := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "good-2"})
	good2, err := enc2.EncryptUpdate(1, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(good2); err != nil {
		t.Fatal(err)
	}
	res, err := f.decrypt(t, agg, []MemberID{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	twice := make([]float64, dim)
	for i, x := range u {
		twice[i] = 2 * x
	}
	if e := maxAbsDiff(res.WeightedSum, twice); e > 1e-3 {
		t.Errorf("aggregate damaged by rejected updates: max error %.3g", e)
	}
	if err := agg.Add(fresh()); !errors.Is(err, ErrFrozen) {
		t.Errorf("add after the decryption request: err = %v, want ErrFrozen", err)
	}
}

// TestAggregatorMaxContributors: the aggregator refuses the update that would exceed the
// overflow budget.
func TestAggregatorMaxContributors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 12)
	p := testParams(t, ParametersLiteral{LogN: 10, MaxContributors: 2})
	cfg := CommitteeConfig{Size: 2, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	agg, _ := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: 10, Committee: cfg})
	for i := 0; i < 3; i++ {
		enc, _ := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: fmt.Sprint(i)})
		u, err := enc.EncryptUpdate(1, make([]float64, 10), 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(u); (err == nil) != (i < 2) {
			t.Errorf("update %d: err = %v", i, err)
		}
	}
}

func TestCombineRejectsBadShares(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 13)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	agg, exact := smallRound(t, f, 1, 2, 500)
	if _, err := agg.Combine(nil); err == nil {
		t.Error("Combine without a request succeeded")
	}
	req, err := agg.DecryptionRequest([]MemberID{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := f.members[1].DecryptionShare(req)
	s3, _ := f.members[2].DecryptionShare(req)
	tamper := func(s *DecryptionShare) *DecryptionShare {
		c := *s
		c.shares = append([]ring.Poly(nil), s.shares...)
		c.shares[0] = *s.shares[0].CopyNew()
		c.shares[0].Coeffs[0][7] = (c.shares[0].Coeffs[0][7] + 1<<50) % p.Modulus()
		return &c
	}
	other := func(edit func(c *DecryptionShare)) *DecryptionShare { c := *s3; edit(&c); return &c }
	for _, tc := range []struct {
		name   string
		shares []*DecryptionShare
		is     error
	}{
		{"duplicate member", []*DecryptionShare{s2, s2}, nil},
		{"three shares", []*DecryptionShare{s2, s3, s3}, nil},
		{"other round", []*DecryptionShare{s2, other(func(c *DecryptionShare) { c.Round = 9 })}, ErrWrongSession},
		{"other set", []*DecryptionShare{s2, other(func(c *DecryptionShare) { c.Members = []MemberID{1, 3} })}, ErrWrongSession},
		{"outsider", []*DecryptionShare{s2, other(func(c *DecryptionShare) { c.From = 1 })}, nil},
		{"corrupted share", []*DecryptionShare{s2, tamper(s3)}, ErrInconsistentDecryption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agg.Combine(tc.shares)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
		})
	}
	res, err := agg.Combine([]*DecryptionShare{s3, s2})
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 {
		t.Errorf("max error %.3g", e)
	}
}
