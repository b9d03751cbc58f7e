package secagg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// federation is an in-memory committee after key setup, for tests.
type federation struct {
	params  Parameters
	session SessionID
	cfg     CommitteeConfig
	members []*Member // members[i] has id i+1
	pk      *PublicKey
}

// newFederation runs the whole key setup in memory. absentDealers do not deal (they still
// receive their shares).
func newFederation(t testing.TB, params Parameters, cfg CommitteeConfig, workers int, absentDealers ...MemberID) *federation {
	t.Helper()
	session := NewSessionID()
	ks, err := NewKeySetup(params, session, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &federation{params: params, session: session, cfg: cfg}
	for i := 1; i <= cfg.Size; i++ {
		m, err := NewMember(params, MemberConfig{Session: session, ID: MemberID(i), Committee: cfg, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddAnnouncement(m.Announcement()); err != nil {
			t.Fatal(err)
		}
		f.members = append(f.members, m)
	}
	ro, err := ks.Roster()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.members {
		d, err := m.Deal(ro)
		if err != nil {
			t.Fatal(err)
		}
		absent := false
		for _, a := range absentDealers {
			absent = absent || a == m.ID()
		}
		if absent {
			continue
		}
		if err := ks.AddDealing(d); err != nil {
			t.Fatal(err)
		}
	}
	pk, deliveries, err := ks.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range f.members {
		if err := m.ReceiveShares(deliveries[i]); err != nil {
			t.Fatal(err)
		}
	}
	f.pk = pk
	return f
}

// decrypt asks the members of set for shares and combines them.
func (f *federation) decrypt(t testing.TB, agg *Aggregator, set []MemberID) (*AggregateResult, error) {
	t.Helper()
	req, err := agg.DecryptionRequest(set)
	if err != nil {
		return nil, err
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.members[id-1].DecryptionShare(req)
		if err != nil {
			return nil, err
		}
		shares = append(shares, s)
	}
	return agg.Combine(shares)
}

// randomUpdates returns n vectors of dim values uniform in [-bound, bound].
func randomUpdates(seed uint64, n, dim int, bound float64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, dim)
		for j := range out[i] {
			out[i][j] = (2*r.Float64() - 1) * bound
		}
	}
	return out
}

func maxAbsDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func testParams(t testing.TB, lit ParametersLiteral) Parameters {
	t.Helper()
	p, err := newParameters(lit, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
