package client_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/secagg/identitytest"
)

// testCommittee is a key committee of K = 3, t = 2, m = 2 after its key setup, in memory:
// the task parameters that describe it, its members and its public key; with a CA, every
// party signs and verifies (authenticated secure aggregation).
type testCommittee struct {
	committee secagg.CommitteeConfig
	sp        *pb.SecAggParams
	params    secagg.Parameters
	session   secagg.SessionID
	members   []*secagg.Member
	pkb       []byte // the public key as a task's blob carries it
	ca        *identitytest.CA
	verifier  *secagg.Verifier
}

// newTestCommittee runs the key setup of a committee, authenticated by a CA of its own
// when authenticated is set.
func newTestCommittee(t *testing.T, authenticated bool) *testCommittee {
	t.Helper()
	c := &testCommittee{committee: secagg.CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, session: secagg.NewSessionID()}
	c.sp = &pb.SecAggParams{LogN: 12, ClipBound: 10, MaxWeight: 1, MaxContributors: 100,
		CommitteeSize: int32(c.committee.Size), Threshold: int32(c.committee.Threshold), MinContributions: int32(c.committee.MinContributions)}
	var err error
	if c.params, err = secagg.NewParameters(client.SecAggLiteral(c.sp)); err != nil {
		t.Fatal(err)
	}
	var setup *secagg.KeySetup
	if authenticated {
		if c.ca, err = identitytest.NewCA(7); err != nil {
			t.Fatal(err)
		}
		if c.verifier, err = secagg.NewVerifier([]*x509.Certificate{c.ca.Certificate()}, nil); err != nil {
			t.Fatal(err)
		}
		setup, err = secagg.NewAuthenticatedKeySetup(c.params, c.session, c.committee, c.verifier)
	} else {
		setup, err = secagg.NewKeySetup(c.params, c.session, c.committee)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.members = make([]*secagg.Member, c.committee.Size)
	for i := range c.members {
		mc := secagg.MemberConfig{Session: c.session, ID: secagg.MemberID(i + 1), Committee: c.committee}
		if authenticated {
			mc.Signer, mc.Verifier = c.signer(t, fmt.Sprint("member-", i+1)), c.verifier
		}
		if c.members[i], err = secagg.NewMember(c.params, mc); err != nil {
			t.Fatal(err)
		}
		if err := setup.AddAnnouncement(c.members[i].Announcement()); err != nil {
			t.Fatal(err)
		}
	}
	roster, err := setup.Roster()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.members {
		d, err := m.Deal(roster)
		if err != nil {
			t.Fatal(err)
		}
		if err := setup.AddDealing(d); err != nil {
			t.Fatal(err)
		}
	}
	pk, deliveries, err := setup.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range c.members {
		if err := m.ReceiveShares(deliveries[i]); err != nil {
			t.Fatal(err)
		}
	}
	if c.pkb, err = pk.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	return c
}

// signer returns the identity of name under the committee's CA.
func (c *testCommittee) signer(t *testing.T, name string) *secagg.Signer {
	t.Helper()
	id, err := c.ca.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := secagg.NewSigner(id.Certificate, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMixedTasksGetNoDecryption: a server that gives two clients of one round different
// learning rates (a tiny one shrinks that client's update, and under dp.distributed its
// noise share, to nothing, so the sum would be the other client's update with part of the
// noise) gets no decryption: each client signs its task's digest into its upload, and the
// authenticated committee refuses a sum of uploads made under two digests. The same task
// for both decrypts.
func TestMixedTasksGetNoDecryption(t *testing.T) {
	c := newTestCommittee(t, true)
	committee, sp, params, session, members, pkb, verifier := c.committee, c.sp, c.params, c.session, c.members, c.pkb, c.verifier
	signer := func(name string) *secagg.Signer { return c.signer(t, name) }
	// upload is what client name sends for round's fit task at learning rate lr; with
	// control set, a SCAFFOLD task with that server control variate.
	upload := func(name string, round uint64, lr float64, control ...float64) *secagg.EncryptedUpdate {
		p, err := client.NewParty(client.PartyConfig{ClientID: name, Signer: signer(name), Verifier: verifier, ForgetUpdates: true}, fixedTrainer{shift: 0.1, steps: 1})
		if err != nil {
			t.Fatal(err)
		}
		fs := &pb.FitSpec{Optimizer: "sgd", LearningRate: lr, WeightScale: 10, UpdateClipNorm: 10, MaxWeight: 1,
			Secagg: &pb.SecAggSpec{Session: session[:], Params: sp}}
		if control != nil {
			fs.Scaffold = &pb.ScaffoldSpec{ControlClipNorm: 10}
		}
		tk := fitTask(blobSpec, zeros(), fs)
		tk.Round, tk.TaskId = round, fmt.Sprintf("fit-r%d-%s", round, name)
		tk.Blobs = append(tk.Blobs, blob.New(blob.PublicKey, pkb))
		if control != nil {
			tk.Blobs = append(tk.Blobs, blob.New(blob.Control, blob.EncodeFloats(control)))
		}
		res, err := p.Handle(t.Context(), tk)
		if err != nil {
			t.Fatal(err)
		}
		b, err := blob.Find(res.GetBlobs(), blob.EncryptedUpdate)
		if err != nil {
			t.Fatalf("%s: %v %q: %v", name, res.Status, res.Reason, err)
		}
		var u secagg.EncryptedUpdate
		if err := u.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		return &u
	}
	// decrypt sums the uploads as an honest aggregator does and asks members 1 and 2.
	decrypt := func(round uint64, ups ...*secagg.EncryptedUpdate) (*secagg.AggregateResult, error) {
		agg, err := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: round, Dim: ups[0].Dim, Committee: committee, Purpose: secagg.PurposeFit, Verifier: verifier})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups {
			if err := agg.Add(u); err != nil {
				t.Fatal(err)
			}
		}
		req, err := agg.DecryptionRequest([]secagg.MemberID{1, 2})
		if err != nil {
			t.Fatal(err)
		}
		var shares []*secagg.DecryptionShare
		for _, m := range members[:2] {
			ch, err := m.Challenge(req)
			if err != nil {
				return nil, err
			}
			o, err := agg.Open(ch)
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.DecryptionShare(req, o)
			if err != nil {
				return nil, err
			}
			shares = append(shares, s)
		}
		return agg.Combine(shares)
	}
	if res, err := decrypt(1, upload("client-a", 1, 0.1), upload("client-b", 1, 1e-9)); res != nil || !errors.Is(err, secagg.ErrMixedTasks) {
		t.Fatalf("learning rates 0.1 and 1e-9 in one round: err = %v, want ErrMixedTasks", err)
	}
	res, err := decrypt(2, upload("client-a", 2, 0.1), upload("client-b", 2, 0.1))
	if err != nil {
		t.Fatalf("one task for both: %v", err)
	}
	if res.Count != 2 {
		t.Fatalf("one task for both: count %d, want 2", res.Count)
	}
	// SCAFFOLD: the server's control variate steers every update (y = x − η·(g − c_i + c)),
	// so a server could hand all clients but one a control variate that makes their
	// updates a known constant; it is part of the task, and differing ones get no
	// decryption.
	n := len(zeros())
	big, small := make([]float64, n), make([]float64, n)
	for i := range big {
		big[i] = 5
	}
	if res, err := decrypt(3, upload("client-a", 3, 0.1, small...), upload("client-b", 3, 0.1, big...)); res != nil || !errors.Is(err, secagg.ErrMixedTasks) {
		t.Fatalf("SCAFFOLD control variates 0 and 5 in one round: err = %v, want ErrMixedTasks", err)
	}
	if res, err := decrypt(4, upload("client-a", 4, 0.1, big...), upload("client-b", 4, 0.1, big...)); err != nil || res.Count != 2 {
		t.Fatalf("SCAFFOLD, one control variate for both: %v", err)
	}
}
