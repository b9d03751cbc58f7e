package secagg

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/confide-fl/confide/secagg/identitytest"
)

// The fuzz targets decode arbitrary bytes with every decoder, require that whatever decodes
// re-encodes to the same bytes, and hand it to the party that consumes it; nothing may panic.
// Their seed corpora under testdata/fuzz are written by
//
//	go test ./secagg -run TestWriteFuzzCorpus -args -update-fuzz-corpus
//
// from a tiny (insecure, LogN 4) federation, so the seeds are small.

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the seed corpora under testdata/fuzz")

const fuzzDim = 20 // two chunks at N = 16

var fuzzSession = SessionID{'f', 'u', 'z', 'z'}

func fuzzParams(t testing.TB) Parameters {
	return testParams(t, ParametersLiteral{LogN: 4})
}

// fuzzFederation is a ready authenticated committee of 3 (t = 2) with the fixed fuzz
// session, plus an aggregator holding two signed updates, and the messages of its setup and
// first round (member 1 challenged and answered, member 2 answered).
type fuzzFederation struct {
	*federation
	ks        *KeySetup
	delivery  []*ShareDelivery
	agg       *Aggregator
	update    *EncryptedUpdate
	request   *DecryptionRequest
	challenge *Challenge
	opening   *Opening
	shares    []*DecryptionShare
	state     []byte // member 1's state after its challenge
}

func newFuzzFederation(t testing.TB) *fuzzFederation {
	t.Helper()
	p := fuzzParams(t)
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	ca, err := identitytest.NewCA(1)
	if err != nil {
		t.Fatal(err)
	}
	v := testVerifier(t, ca)
	ks, err := NewAuthenticatedKeySetup(p, fuzzSession, cfg, v)
	if err != nil {
		t.Fatal(err)
	}
	fz := &fuzzFederation{federation: &federation{params: p, session: fuzzSession, cfg: cfg, ca: ca, verifier: v}, ks: ks}
	for i := 1; i <= cfg.Size; i++ {
		m, err := NewMember(p, MemberConfig{Session: fuzzSession, ID: MemberID(i), Committee: cfg, Signer: testSigner(t, ca, fmt.Sprint("member-", i)), Verifier: v})
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddAnnouncement(m.Announcement()); err != nil {
			t.Fatal(err)
		}
		fz.members = append(fz.members, m)
	}
	if fz.roster, err = ks.Roster(); err != nil {
		t.Fatal(err)
	}
	for _, m := range fz.members {
		d, err := m.Deal(fz.roster)
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddDealing(d); err != nil {
			t.Fatal(err)
		}
		fz.dealings = append(fz.dealings, d)
	}
	if fz.pk, fz.delivery, err = ks.Finalize(); err != nil {
		t.Fatal(err)
	}
	for i, m := range fz.members[:2] { // member 3 stays without its share, for ReceiveShares
		if err := m.ReceiveShares(fz.delivery[i]); err != nil {
			t.Fatal(err)
		}
	}
	fz.agg = fz.newAggregator(t)
	for i := 0; i < 2; i++ {
		u := fz.upload(t, fmt.Sprint("client", i), 1, PurposeFit, randomUpdates(uint64(i), 1, fuzzDim, 1)[0])
		if err := fz.agg.Add(u); err != nil {
			t.Fatal(err)
		}
		fz.update = u
	}
	if fz.request, err = fz.agg.DecryptionRequest([]MemberID{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, m := range fz.members[:2] {
		ch, err := m.Challenge(fz.request)
		if err != nil {
			t.Fatal(err)
		}
		o, err := fz.agg.Open(ch)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID() == 1 {
			fz.challenge, fz.opening = ch, o
			if fz.state, err = m.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		s, err := m.DecryptionShare(fz.request, o)
		if err != nil {
			t.Fatal(err)
		}
		fz.shares = append(fz.shares, s)
	}
	return fz
}

func (fz *fuzzFederation) newAggregator(t testing.TB) *Aggregator {
	return fz.federation.newAggregator(t, 1, PurposeFit, fuzzDim)
}

// member1 is member 1 restored from its state after its challenge.
func (fz *fuzzFederation) member1(t testing.TB) *Member {
	m, err := LoadMemberWithConfig(fz.params, fz.state, MemberConfig{Signer: fz.members[0].cfg.Signer, Verifier: fz.verifier})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fuzzDecode decodes b into msg and checks that it re-encodes to b.
func fuzzDecode(t *testing.T, msg binaryMessage, b []byte) bool {
	if err := msg.UnmarshalBinary(b); err != nil {
		return false
	}
	b2, err := msg.MarshalBinary()
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", msg, err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("decoded %T re-encodes differently", msg)
	}
	return true
}

func FuzzKeyAnnouncement(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a KeyAnnouncement
		if fuzzDecode(t, &a, b) {
			ks, _ := NewAuthenticatedKeySetup(fz.params, fuzzSession, fz.cfg, fz.verifier)
			_ = ks.AddAnnouncement(&a)
		}
	})
}

func FuzzRoster(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var ro Roster
		if fuzzDecode(t, &ro, b) {
			m, err := NewMember(fz.params, MemberConfig{Session: fuzzSession, ID: 1, Committee: fz.cfg, Signer: fz.members[0].cfg.Signer, Verifier: fz.verifier})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = m.Deal(&ro)
		}
	})
}

func FuzzDealing(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Dealing
		if fuzzDecode(t, &d, b) {
			ks, _ := NewAuthenticatedKeySetup(fz.params, fuzzSession, fz.cfg, fz.verifier)
			for i := range fz.roster.Announcements {
				_ = ks.AddAnnouncement(&fz.roster.Announcements[i])
			}
			if _, err := ks.Roster(); err != nil {
				t.Fatal(err)
			}
			if ks.AddDealing(&d) == nil {
				_ = ks.AddDealing(fz.dealings[1])
				if pk, _, err := ks.Finalize(); err == nil {
					_, _ = NewEncryptor(fz.params, pk, EncryptorConfig{Signer: fz.members[0].cfg.Signer, Verifier: fz.verifier})
				}
			}
		}
	})
}

func FuzzShareDelivery(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var v ShareDelivery
		if fuzzDecode(t, &v, b) {
			_ = fz.members[2].ReceiveShares(&v)
		}
	})
}

func FuzzPublicKey(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var k PublicKey
		if fuzzDecode(t, &k, b) {
			if enc, err := NewEncryptor(fz.params, &k, EncryptorConfig{ClientID: "x"}); err == nil {
				if _, err := enc.EncryptUpdate(1, make([]float64, fuzzDim), 1); err != nil {
					t.Fatal(err)
				}
			}
			if enc, err := NewEncryptor(fz.params, &k, EncryptorConfig{Signer: fz.members[0].cfg.Signer, Verifier: fz.verifier}); err == nil {
				if _, err := enc.Encrypt(UploadContext{Round: 1, Purpose: PurposeFit}, make([]float64, fuzzDim), 1); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// FuzzEncryptedUpdate also adds the bytes with AddBinary, which must accept exactly what
// UnmarshalBinary and Add accept, into the same sums.
func FuzzEncryptedUpdate(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var u EncryptedUpdate
		whole, streamed := fz.newAggregator(t), fz.newAggregator(t)
		errWhole := errors.New("does not decode")
		if fuzzDecode(t, &u, b) {
			errWhole = whole.Add(&u)
		}
		errStreamed := streamed.AddBinary(b, nil)
		if (errWhole == nil) != (errStreamed == nil) {
			t.Fatalf("UnmarshalBinary + Add: %v; AddBinary: %v", errWhole, errStreamed)
		}
		if !bytes.Equal(sumBytes(t, whole), sumBytes(t, streamed)) || whole.Count() != streamed.Count() {
			t.Fatal("AddBinary's aggregate differs from Add's")
		}
	})
}

func FuzzDecryptionRequest(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var q DecryptionRequest
		if fuzzDecode(t, &q, b) {
			m := fz.member1(t)
			if ch, err := m.Challenge(&q); err == nil {
				if o, err := fz.agg.Open(ch); err == nil {
					if s, err := m.DecryptionShare(&q, o); err == nil {
						if _, err := s.MarshalBinary(); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	})
}

func FuzzChallenge(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Challenge
		if fuzzDecode(t, &c, b) {
			if o, err := fz.agg.Open(&c); err == nil {
				if _, err := o.MarshalBinary(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func FuzzOpening(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Opening
		if fuzzDecode(t, &o, b) {
			_, _ = fz.member1(t).DecryptionShare(fz.request, &o)
		}
	})
}

func FuzzDecryptionShare(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s DecryptionShare
		if fuzzDecode(t, &s, b) {
			_, _ = fz.agg.Combine([]*DecryptionShare{fz.shares[0], &s})
			// Also drive the decoding path: pretend the share answers the pending request.
			s.Session, s.Round, s.Aggregate, s.Members, s.From = fz.request.Session, fz.request.Round, fz.request.Aggregate, fz.request.Members, 2
			_, _ = fz.agg.Combine([]*DecryptionShare{fz.shares[0], &s})
		}
	})
}

func FuzzMemberState(f *testing.F) {
	fz := newFuzzFederation(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := LoadMember(fz.params, b, 1)
		if err != nil {
			m, err = LoadMemberWithConfig(fz.params, b, MemberConfig{Signer: fz.members[0].cfg.Signer, Verifier: fz.verifier})
		}
		if err != nil {
			return
		}
		b2, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 3 && b[3] == 1 {
			// A version-1 state is rewritten as version 2, which must round-trip.
			if m, err = LoadMember(fz.params, b2, 1); err != nil {
				t.Fatal(err)
			}
			b, _ = m.MarshalBinary()
		}
		if !bytes.Equal(b, b2) {
			t.Fatal("member state re-encodes differently")
		}
	})
}

// TestWriteFuzzCorpus rewrites the committed seed corpora (only with -update-fuzz-corpus):
// one valid message of each kind and a few damaged variants.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateFuzzCorpus {
		t.Skip("run with -update-fuzz-corpus to rewrite testdata/fuzz")
	}
	cryptotest.SetGlobalRandom(t, 99)
	fz := newFuzzFederation(t)
	state, err := fz.members[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := NewMember(fz.params, MemberConfig{Session: fuzzSession, ID: 2, Committee: fz.cfg})
	if err != nil {
		t.Fatal(err)
	}
	freshState, _ := fresh.MarshalBinary()
	v1State, err := os.ReadFile(filepath.Join("testdata", "member-state-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][][]byte{
		"FuzzKeyAnnouncement":   {roundTripBytes(t, fz.members[0].Announcement())},
		"FuzzRoster":            {roundTripBytes(t, fz.roster)},
		"FuzzDealing":           {roundTripBytes(t, fz.dealings[0])},
		"FuzzShareDelivery":     {roundTripBytes(t, fz.delivery[2])},
		"FuzzPublicKey":         {roundTripBytes(t, fz.pk)},
		"FuzzEncryptedUpdate":   {roundTripBytes(t, fz.update)},
		"FuzzDecryptionRequest": {roundTripBytes(t, fz.request)},
		"FuzzDecryptionShare":   {roundTripBytes(t, fz.shares[1])},
		"FuzzChallenge":         {roundTripBytes(t, fz.challenge)},
		"FuzzOpening":           {roundTripBytes(t, fz.opening)},
		"FuzzMemberState":       {state, freshState, fz.state, v1State},
	}
	for name, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		valid := list[0]
		damaged := map[string][]byte{
			"truncated":   valid[:len(valid)-1],
			"header-only": valid[:4],
			"extra-byte":  append(append([]byte(nil), valid...), 0),
			"bad-version": append([]byte{valid[0], valid[1], valid[2], 9}, valid[4:]...),
			"empty":       {},
		}
		for i, b := range list {
			damaged[fmt.Sprintf("valid-%d", i)] = b
		}
		// Flip a byte in the middle: usually a coefficient or a count.
		mid := append([]byte(nil), valid...)
		mid[len(mid)/2] ^= 0xff
		damaged["flipped-middle"] = mid
		for label, b := range damaged {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, label), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFuzzCorpusSeedsDecode keeps the committed corpora meaningful: every valid seed must
// still decode (a wire-format change must come with a rewritten corpus).
func TestFuzzCorpusSeedsDecode(t *testing.T) {
	p := fuzzParams(t)
	decoders := map[string]func([]byte) error{
		"FuzzKeyAnnouncement":   func(b []byte) error { return new(KeyAnnouncement).UnmarshalBinary(b) },
		"FuzzRoster":            func(b []byte) error { return new(Roster).UnmarshalBinary(b) },
		"FuzzDealing":           func(b []byte) error { return new(Dealing).UnmarshalBinary(b) },
		"FuzzShareDelivery":     func(b []byte) error { return new(ShareDelivery).UnmarshalBinary(b) },
		"FuzzPublicKey":         func(b []byte) error { return new(PublicKey).UnmarshalBinary(b) },
		"FuzzEncryptedUpdate":   func(b []byte) error { return new(EncryptedUpdate).UnmarshalBinary(b) },
		"FuzzDecryptionRequest": func(b []byte) error { return new(DecryptionRequest).UnmarshalBinary(b) },
		"FuzzDecryptionShare":   func(b []byte) error { return new(DecryptionShare).UnmarshalBinary(b) },
		"FuzzChallenge":         func(b []byte) error { return new(Challenge).UnmarshalBinary(b) },
		"FuzzOpening":           func(b []byte) error { return new(Opening).UnmarshalBinary(b) },
		"FuzzMemberState": func(b []byte) error {
			_, _, err := decodeMemberState(p, b, 1, nil)
			return err
		},
	}
	for name, decode := range decoders {
		t.Run(name, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "valid-*"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no valid seeds for %s (%v)", name, err)
			}
			for _, file := range files {
				raw, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
				lit := strings.TrimSuffix(strings.TrimPrefix(lines[len(lines)-1], "[]byte("), ")")
				b, err := strconv.Unquote(lit)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if err := decode([]byte(b)); err != nil {
					t.Errorf("%s no longer decodes: %v", file, err)
				}
			}
		})
	}
}
