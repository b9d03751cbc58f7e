package secagg

import (
	"crypto/x509"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/secagg/identitytest"
)

// federation is an in-memory committee after key setup, for tests.
type federation struct {
	params  Parameters
	session SessionID
	cfg     CommitteeConfig
	members []*Member // members[i] has id i+1
	pk      *PublicKey
	// With identities (newAuthFederation): the CA, the verifier every party uses, and the
	// key setup's messages.
	ca       *identitytest.CA
	verifier *Verifier
	roster   *Roster
	dealings []*Dealing
}

// authenticated reports whether the federation's parties sign and verify.
func (f *federation) authenticated() bool { return f.verifier != nil }

// newFederation runs the whole key setup in memory. absentDealers do not deal (they still
// receive their shares).
func newFederation(t testing.TB, params Parameters, cfg CommitteeConfig, workers int, absentDealers ...MemberID) *federation {
	t.Helper()
	return buildFederation(t, params, cfg, workers, nil, absentDealers...)
}

// newAuthFederation is newFederation for the active-server model: a CA, members
// "member-1"… with signers, an authenticated key setup.
func newAuthFederation(t testing.TB, params Parameters, cfg CommitteeConfig, workers int, absentDealers ...MemberID) *federation {
	t.Helper()
	ca, err := identitytest.NewCA(1)
	if err != nil {
		t.Fatal(err)
	}
	return buildFederation(t, params, cfg, workers, ca, absentDealers...)
}

func testVerifier(t testing.TB, ca *identitytest.CA) *Verifier {
	t.Helper()
	v, err := NewVerifier([]*x509.Certificate{ca.Certificate()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testSigner returns the signer of name under ca.
func testSigner(t testing.TB, ca *identitytest.CA, name string) *Signer {
	t.Helper()
	id, err := ca.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(id.Certificate, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func buildFederation(t testing.TB, params Parameters, cfg CommitteeConfig, workers int, ca *identitytest.CA, absentDealers ...MemberID) *federation {
	t.Helper()
	session := NewSessionID()
	f := &federation{params: params, session: session, cfg: cfg, ca: ca}
	var ks *KeySetup
	var err error
	if ca != nil {
		f.verifier = testVerifier(t, ca)
		ks, err = NewAuthenticatedKeySetup(params, session, cfg, f.verifier)
	} else {
		ks, err = NewKeySetup(params, session, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= cfg.Size; i++ {
		mc := MemberConfig{Session: session, ID: MemberID(i), Committee: cfg, Workers: workers}
		if ca != nil {
			mc.Signer, mc.Verifier = testSigner(t, ca, fmt.Sprint("member-", i)), f.verifier
		}
		m, err := NewMember(params, mc)
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
	f.roster = ro
	for _, m := range f.members {
		d, err := m.Deal(ro)
		if err != nil {
			t.Fatal(err)
		}
		f.dealings = append(f.dealings, d)
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

// snapshot returns the federation with its members restored from their persisted state as
// it is now: a copy of the committee that will not see what f's members do next.
func (f *federation) snapshot(t testing.TB) *federation {
	t.Helper()
	g := *f
	g.members = nil
	for _, m := range f.members {
		state, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c, err := LoadMemberWithConfig(f.params, state, MemberConfig{Signer: m.cfg.Signer, Verifier: f.verifier, Workers: m.cfg.Workers})
		if err != nil {
			t.Fatal(err)
		}
		g.members = append(g.members, c)
	}
	return &g
}

// decrypt asks the members of set for shares and combines them (through a challenge and
// the aggregator's opening when the federation is authenticated).
func (f *federation) decrypt(t testing.TB, agg *Aggregator, set []MemberID) (*AggregateResult, error) {
	t.Helper()
	req, err := agg.DecryptionRequest(set)
	if err != nil {
		return nil, err
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.share(agg, req, id)
		if err != nil {
			return nil, err
		}
		shares = append(shares, s)
	}
	return agg.Combine(shares)
}

// share asks member id for its share of req: directly, or through its challenge and agg's
// opening.
func (f *federation) share(agg *Aggregator, req *DecryptionRequest, id MemberID) (*DecryptionShare, error) {
	m := f.members[id-1]
	if !f.authenticated() {
		return m.DecryptionShare(req)
	}
	ch, err := m.Challenge(req)
	if err != nil {
		return nil, err
	}
	o, err := agg.Open(ch)
	if err != nil {
		return nil, err
	}
	return m.DecryptionShare(req, o)
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
