package secagg

import (
	"errors"
	"testing"
	"testing/cryptotest"
)

// setupParties returns a key setup with all announcements in and the members.
func setupParties(t *testing.T, p Parameters, cfg CommitteeConfig) (*KeySetup, []*Member, *Roster) {
	t.Helper()
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
		if _, err := ks.Roster(); !errors.Is(err, ErrNotReady) {
			t.Fatalf("roster before all announcements: err = %v", err)
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
	return ks, members, ro
}

func TestKeySetupRejects(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 20)
	p := testParams(t, ParametersLiteral{LogN: 8})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	ks, members, ro := setupParties(t, p, cfg)

	t.Run("second identity key", func(t *testing.T) {
		a := members[0].Announcement()
		if err := ks.AddAnnouncement(a); err != nil {
			t.Fatalf("repeated identical announcement: %v", err)
		}
		a.IdentityKey[0] ^= 1
		if err := ks.AddAnnouncement(a); !errors.Is(err, ErrDuplicate) {
			t.Errorf("err = %v, want ErrDuplicate", err)
		}
	})
	t.Run("low-order identity key", func(t *testing.T) {
		fresh, _ := NewKeySetup(p, members[0].cfg.Session, cfg)
		a := members[0].Announcement()
		a.IdentityKey = [32]byte{} // the zero point
		if err := fresh.AddAnnouncement(a); err == nil {
			t.Error("zero identity key accepted")
		}
	})
	t.Run("announcement of another session", func(t *testing.T) {
		a := members[0].Announcement()
		a.Session[0] ^= 1
		if err := ks.AddAnnouncement(a); !errors.Is(err, ErrWrongSession) {
			t.Errorf("err = %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		edit func(r *Roster)
	}{
		{"roster with a lower threshold", func(r *Roster) { r.Committee.Threshold = 1 }},
		{"roster with a lower minimum", func(r *Roster) { r.Committee.MinContributions = 0 }},
		{"roster with a substituted key", func(r *Roster) { r.Announcements[0].IdentityKey[5] ^= 1 }},
		{"roster of other parameters", func(r *Roster) { r.ParamsDigest[0] ^= 1 }},
		{"roster of another session", func(r *Roster) { r.Session[0] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := *ro
			r.Announcements = append([]KeyAnnouncement(nil), ro.Announcements...)
			tc.edit(&r)
			if _, err := members[0].Deal(&r); err == nil {
				t.Error("member dealt")
			}
		})
	}

	var dealings []*Dealing
	for _, m := range members {
		d, err := m.Deal(ro)
		if err != nil {
			t.Fatal(err)
		}
		dealings = append(dealings, d)
	}
	if err := ks.AddDealing(dealings[0]); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddDealing(dealings[0]); err != nil {
		t.Errorf("identical dealing repeated: %v", err)
	}
	again, err := members[0].Deal(ro)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.AddDealing(again); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second, different dealing: err = %v, want ErrDuplicate", err)
	}
	if _, _, err := ks.Finalize(); !errors.Is(err, ErrNotReady) {
		t.Errorf("finalize with 1 < t dealings: err = %v", err)
	}
	short := *dealings[1]
	short.sealed = short.sealed[:2]
	if err := ks.AddDealing(&short); err == nil {
		t.Error("dealing with a missing sealed share accepted")
	}
	if err := ks.AddDealing(dealings[1]); err != nil {
		t.Fatal(err)
	}
	_, deliveries, err := ks.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.AddDealing(dealings[2]); err == nil {
		t.Error("dealing after finalize accepted")
	}

	t.Run("tampered sealed share", func(t *testing.T) {
		v := *deliveries[2]
		v.sealed = append([][]byte(nil), v.sealed...)
		v.sealed[1] = append([]byte(nil), v.sealed[1]...)
		v.sealed[1][40] ^= 1
		if err := members[2].ReceiveShares(&v); err == nil {
			t.Error("member accepted a tampered share")
		}
	})
	t.Run("share sealed for another member", func(t *testing.T) {
		v := *deliveries[2]
		v.sealed = deliveries[1].sealed
		if err := members[2].ReceiveShares(&v); err == nil {
			t.Error("member accepted shares sealed for member 2")
		}
	})
	t.Run("delivery for another member", func(t *testing.T) {
		if err := members[2].ReceiveShares(deliveries[1]); !errors.Is(err, ErrWrongSession) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("fewer than t dealers", func(t *testing.T) {
		v := *deliveries[2]
		v.Dealers, v.sealed = v.Dealers[:1], v.sealed[:1]
		if err := members[2].ReceiveShares(&v); err == nil {
			t.Error("member accepted a delivery of 1 < t dealers")
		}
	})
	if err := members[2].ReceiveShares(deliveries[2]); err != nil {
		t.Fatal(err)
	}
	if err := members[2].ReceiveShares(deliveries[2]); err != nil {
		t.Errorf("repeated delivery: %v", err)
	}
	if _, err := members[2].Deal(ro); err == nil {
		t.Error("member dealt again after receiving its shares")
	}
}

// TestMemberStateSurvivesEverySetupStep restarts every member from its persisted state after
// each step of the key setup and checks the committee still decrypts.
func TestMemberStateSurvivesEverySetupStep(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 21)
	p := testParams(t, ParametersLiteral{LogN: 9})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	session := NewSessionID()
	ks, _ := NewKeySetup(p, session, cfg)
	restart := func(m *Member) *Member {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		r, err := LoadMember(p, b, 1)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	members := make([]*Member, cfg.Size)
	for i := range members {
		m, err := NewMember(p, MemberConfig{Session: session, ID: MemberID(i + 1), Committee: cfg})
		if err != nil {
			t.Fatal(err)
		}
		members[i] = restart(m)
		if err := ks.AddAnnouncement(members[i].Announcement()); err != nil {
			t.Fatal(err)
		}
	}
	ro, _ := ks.Roster()
	for i, m := range members {
		d, err := m.Deal(ro)
		if err != nil {
			t.Fatal(err)
		}
		members[i] = restart(m)
		if err := ks.AddDealing(d); err != nil {
			t.Fatal(err)
		}
	}
	pk, deliveries, err := ks.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range members {
		if err := m.ReceiveShares(deliveries[i]); err != nil {
			t.Fatal(err)
		}
		members[i] = restart(m)
		if !members[i].Ready() {
			t.Fatalf("member %d not ready after restart", i+1)
		}
	}
	f := &federation{params: p, session: session, cfg: cfg, members: members, pk: pk}
	agg, exact := smallRound(t, f, 1, 2, 300)
	res, err := f.decrypt(t, agg, []MemberID{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 {
		t.Errorf("max error %.3g", e)
	}
	other := testParams(t, ParametersLiteral{LogN: 9, MaxContributors: 10})
	b, _ := members[0].MarshalBinary()
	if _, err := LoadMember(other, b, 1); err == nil {
		t.Error("state loaded under other parameters")
	}
}
