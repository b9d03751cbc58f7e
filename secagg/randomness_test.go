package secagg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// step is one message or state of a run, by name, as bytes.
type step struct {
	name string
	b    []byte
}

// deterministicRun runs key setup and one round with every party on
// DeterministicRandomness(seed, its own label) and returns every message and member state in
// order, and the decrypted result. Member 2 is persisted and restored before dealing.
func deterministicRun(t *testing.T, p Parameters, seed uint64, workers int) ([]step, *AggregateResult) {
	t.Helper()
	var steps []step
	record := func(name string, m interface{ MarshalBinary() ([]byte, error) }) {
		t.Helper()
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, step{name, b})
	}
	session := SessionID{1, 2, 3}
	cfg := CommitteeConfig{Size: 4, Threshold: 3, MinContributions: 2}
	ks, err := NewKeySetup(p, session, cfg)
	if err != nil {
		t.Fatal(err)
	}
	members := make([]*Member, cfg.Size)
	for i := range members {
		rnd := DeterministicRandomness(seed, fmt.Sprint("member-", i+1))
		if members[i], err = NewMember(p, MemberConfig{Session: session, ID: MemberID(i + 1), Committee: cfg, Workers: workers, Randomness: rnd}); err != nil {
			t.Fatal(err)
		}
		a := members[i].Announcement()
		record(fmt.Sprint("announcement ", i+1), a)
		if err := ks.AddAnnouncement(a); err != nil {
			t.Fatal(err)
		}
	}
	state, err := members[1].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if members[1], err = LoadMemberWithRandomness(p, state, workers, DeterministicRandomness(seed, "member-2")); err != nil {
		t.Fatal(err)
	}
	ro, err := ks.Roster()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range members {
		d, err := m.Deal(ro)
		if err != nil {
			t.Fatal(err)
		}
		record(fmt.Sprint("dealing ", i+1), d)
		if err := ks.AddDealing(d); err != nil {
			t.Fatal(err)
		}
	}
	pk, deliveries, err := ks.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	record("public key", pk)
	for i, m := range members {
		record(fmt.Sprint("delivery ", i+1), deliveries[i])
		if err := m.ReceiveShares(deliveries[i]); err != nil {
			t.Fatal(err)
		}
		record(fmt.Sprint("member state ", i+1), m)
	}

	const round, clients, dim = 5, 3, 2500 // 3 chunks at N = 1024
	agg, err := NewAggregator(p, AggregatorConfig{Session: session, Round: round, Dim: dim, Committee: cfg, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range randomUpdates(11, clients, dim, 1) {
		id := fmt.Sprint("client-", i)
		enc, err := NewEncryptor(p, pk, EncryptorConfig{ClientID: id, Workers: workers, Randomness: DeterministicRandomness(seed, id)})
		if err != nil {
			t.Fatal(err)
		}
		eu, err := enc.EncryptUpdate(round, u, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		record("update "+id, eu)
		if err := agg.Add(eu); err != nil {
			t.Fatal(err)
		}
	}
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	record("decryption request", req)
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := members[id-1].DecryptionShare(req)
		if err != nil {
			t.Fatal(err)
		}
		record(fmt.Sprint("decryption share ", id), s)
		shares = append(shares, s)
	}
	res, err := agg.Combine(shares)
	if err != nil {
		t.Fatal(err)
	}
	sum := make([]byte, 0, 8*(dim+1))
	for _, x := range append(res.WeightedSum, res.TotalWeight) {
		sum = binary.LittleEndian.AppendUint64(sum, math.Float64bits(x))
	}
	steps = append(steps, step{"result", sum})
	return steps, res
}

// TestDeterministicRandomnessReproducible: with deterministic randomness the whole flow —
// identity keys, dealings, public key, deliveries, member states, encrypted updates,
// decryption shares and the decrypted result — is byte-identical across runs, whatever
// the number of workers and through a persist/restore of a member; another seed changes
// every message, and both results are correct.
func TestDeterministicRandomnessReproducible(t *testing.T) {
	p := testParams(t, ParametersLiteral{LogN: 10})
	a, resA := deterministicRun(t, p, 7, 1)
	b, _ := deterministicRun(t, p, 7, 3)
	c, resC := deterministicRun(t, p, 8, 1)
	if len(a) != len(b) || len(a) != len(c) {
		t.Fatalf("runs recorded %d, %d and %d steps", len(a), len(b), len(c))
	}
	for i := range a {
		if !bytes.Equal(a[i].b, b[i].b) {
			t.Errorf("same seed: %s differs between runs", a[i].name)
		}
		if bytes.Equal(a[i].b, c[i].b) {
			t.Errorf("seeds 7 and 8: %s is identical", a[i].name)
		}
	}
	want := make([]float64, 2500)
	for _, u := range randomUpdates(11, 3, 2500, 1) {
		for j, x := range u {
			want[j] += 0.5 * x
		}
	}
	for _, res := range []*AggregateResult{resA, resC} {
		if e := maxAbsDiff(res.WeightedSum, want); e > 1e-3 || res.Count != 3 || math.Abs(res.TotalWeight-1.5) > 1e-3 {
			t.Errorf("result: max error %.3g, count %d, total weight %g", e, res.Count, res.TotalWeight)
		}
	}
}

// TestDeterministicEncryptionBindsUpdate: deterministic encryption of the same update is
// byte-identical, but another update in the same round, or another label, gets other
// randomness (c1 = u·p1 + e1 depends on nothing else), so two ciphertexts never share it.
func TestDeterministicEncryptionBindsUpdate(t *testing.T) {
	p := testParams(t, ParametersLiteral{LogN: 10})
	f := newFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1)
	newEnc := func(label string) *Encryptor {
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "c", Randomness: DeterministicRandomness(1, label)})
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	ups := randomUpdates(2, 2, 100, 1)
	encrypt := func(enc *Encryptor, u []float64) *EncryptedUpdate {
		eu, err := enc.EncryptUpdate(1, u, 1)
		if err != nil {
			t.Fatal(err)
		}
		return eu
	}
	same1, same2 := encrypt(newEnc("a"), ups[0]), encrypt(newEnc("a"), ups[0])
	if !bytes.Equal(mustMarshal(t, same1), mustMarshal(t, same2)) {
		t.Error("same label, round and update: encryptions differ")
	}
	c1 := func(eu *EncryptedUpdate) ring.Poly { return eu.chunks[0].Value[1] }
	if other := encrypt(newEnc("a"), ups[1]); c1(other).Equal(&same1.chunks[0].Value[1]) {
		t.Error("another update in the same round reused the encryption randomness")
	}
	if other := encrypt(newEnc("b"), ups[0]); c1(other).Equal(&same1.chunks[0].Value[1]) {
		t.Error("another label reused the encryption randomness")
	}
}

// TestDefaultRandomnessIsFresh: without a Randomness every draw is fresh (crypto/rand):
// members get different identity keys and dealings, and encrypting the same vector twice,
// with one encryptor or two, gives different ciphertexts.
func TestDefaultRandomnessIsFresh(t *testing.T) {
	var none *Randomness
	if none.Deterministic() || !DeterministicRandomness(0, "").Deterministic() {
		t.Fatal("Deterministic() wrong")
	}
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	m1, err := NewMember(p, MemberConfig{Session: f.session, ID: 1, Committee: cfg})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMember(p, MemberConfig{Session: f.session, ID: 1, Committee: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Announcement().IdentityKey == m2.Announcement().IdentityKey || m1.noiseKey == m2.noiseKey {
		t.Error("two default members drew the same identity or noise key")
	}
	u := randomUpdates(4, 1, 3000, 1)[0]
	var seen [][]byte
	for range 2 {
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: "c", Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			eu, err := enc.EncryptUpdate(1, u, 1)
			if err != nil {
				t.Fatal(err)
			}
			b := mustMarshal(t, eu)
			for _, s := range seen {
				if bytes.Equal(s, b) {
					t.Fatal("two default encryptions of the same update are identical")
				}
			}
			seen = append(seen, b)
		}
	}
}

func mustMarshal(t *testing.T, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// centred returns the coefficients of an NTT/Montgomery-domain polynomial as centred
// integers.
func centred(he rlwe.Parameters, p ring.Poly, montgomery bool) []int64 {
	r := he.RingQ()
	c := r.NewPoly()
	r.INTT(p, c)
	if montgomery {
		r.IMForm(c, c)
	}
	q := he.Q()[0]
	out := make([]int64, len(c.Coeffs[0]))
	for i, x := range c.Coeffs[0] {
		if x > q/2 {
			out[i] = -int64(q - x)
		} else {
			out[i] = int64(x)
		}
	}
	return out
}

// TestSamplingMatchesLattigo checks secagg's own key generation, key-generation share,
// Shamir polynomial and public-key encryption (sampling.go) against lattigo's: the secret
// key is ternary with lattigo's density, the share differs from lattigo's GenShare for the
// same key and CRP only by small noise, the Shamir polynomial has the key as constant term,
// and ciphertexts decrypt under lattigo's decryptor with the noise of lattigo's encryptions.
func TestSamplingMatchesLattigo(t *testing.T) {
	p := testParams(t, ParametersLiteral{LogN: 12})
	he := *p.he.GetRLWEParameters()
	prng, err := sampling.NewKeyedPRNG([]byte("secagg sampling test"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := genSecretKey(he, prng)
	if err != nil {
		t.Fatal(err)
	}
	nonzero := func(s *rlwe.SecretKey) float64 {
		n := 0
		for _, c := range centred(he, s.Value.Q, true) {
			if c < -1 || c > 1 {
				t.Fatalf("secret key coefficient %d is not ternary", c)
			}
			if c != 0 {
				n++
			}
		}
		return float64(n) / float64(he.N())
	}
	ours, theirs := nonzero(sk), nonzero(rlwe.NewKeyGenerator(he).GenSecretKeyNew())
	if math.Abs(ours-theirs) > 0.05 {
		t.Errorf("secret key density %.3f, lattigo's %.3f", ours, theirs)
	}

	crs, err := sampling.NewKeyedPRNG([]byte("crs"))
	if err != nil {
		t.Fatal(err)
	}
	ckg := mhe.NewPublicKeyGenProtocol(he)
	crp := ckg.SampleCRP(crs)
	share, err := genPublicKeyShare(he, prng, sk, crp)
	if err != nil {
		t.Fatal(err)
	}
	ref := ckg.AllocateShare()
	ckg.GenShare(sk, crp, &ref)
	diff := he.RingQ().NewPoly()
	he.RingQ().Sub(share.Value.Q, ref.Value.Q, diff)
	bound := int64(2 * math.Ceil(he.NoiseBound()))
	for _, c := range centred(he, diff, true) {
		if c < -bound || c > bound {
			t.Fatalf("public-key share differs from lattigo's GenShare by %d (more than two noise bounds %d)", c, bound)
		}
	}

	poly, err := genShamirPolynomial(he, prng, 3, sk)
	if err != nil {
		t.Fatal(err)
	}
	if len(poly.Value) != 3 || !poly.Value[0].Equal(&sk.Value) || poly.Value[1].Equal(&poly.Value[2]) {
		t.Error("Shamir polynomial: want constant term sk and two distinct random coefficients")
	}

	pk := rlwe.NewKeyGenerator(he).GenPublicKeyNew(sk)
	ecd := hefloat.NewEncoder(p.he, 53)
	dec := rlwe.NewDecryptor(he, sk)
	vals := make([]float64, he.N())
	for i := range vals {
		vals[i] = math.Sin(float64(i))
	}
	pt := hefloat.NewPlaintext(p.he, 0)
	pt.IsBatched = false
	if err := ecd.Encode(vals, pt); err != nil {
		t.Fatal(err)
	}
	noiseStd := func(ct *rlwe.Ciphertext) float64 {
		got := make([]float64, he.N())
		if err := ecd.Decode(dec.DecryptNew(ct), got); err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for i := range got {
			d := (got[i] - vals[i]) * p.scale()
			s += d * d
		}
		return math.Sqrt(s / float64(len(got)))
	}
	ct := hefloat.NewCiphertext(p.he, 1, 0)
	if err := encryptPk(he, prng, pk, pt, ct, he.RingQ().NewPoly()); err != nil {
		t.Fatal(err)
	}
	refCt, err := rlwe.NewEncryptor(he, pk).EncryptNew(pt)
	if err != nil {
		t.Fatal(err)
	}
	if !ct.MetaData.Equal(refCt.MetaData) {
		t.Errorf("ciphertext metadata %+v, lattigo's %+v", *ct.MetaData, *refCt.MetaData)
	}
	o, l := noiseStd(ct), noiseStd(refCt)
	if o > 1.25*l || l > 1.25*o || o < 1 {
		t.Errorf("encryption noise std %.1f, lattigo's %.1f", o, l)
	}
}
