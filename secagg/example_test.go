package secagg_test

import (
	"crypto/x509"
	"fmt"
	"math"

	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/secagg/identitytest"
)

// Example runs the whole protocol in memory: key setup of a 5-member committee (threshold 3),
// three clients, and a decryption by members 2, 4 and 5. In a deployment every arrow is a
// message the runtime marshals (MarshalBinary) and carries; the parties do no I/O.
func Example() {
	params, err := secagg.NewParameters(secagg.ParametersLiteral{LogN: 12}) // defaults otherwise
	if err != nil {
		panic(err)
	}
	committee := secagg.CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 2}
	session := secagg.NewSessionID()

	// Key setup. Members persist m.MarshalBinary() after each step (secagg.LoadMember restores).
	setup, _ := secagg.NewKeySetup(params, session, committee)
	members := make([]*secagg.Member, committee.Size)
	for i := range members {
		members[i], _ = secagg.NewMember(params, secagg.MemberConfig{Session: session, ID: secagg.MemberID(i + 1), Committee: committee})
		_ = setup.AddAnnouncement(members[i].Announcement()) // member → server
	}
	roster, _ := setup.Roster() // server → every member
	for _, m := range members {
		dealing, _ := m.Deal(roster)  // member → server
		_ = setup.AddDealing(dealing) // (sealed Shamir shares inside)
	}
	publicKey, deliveries, _ := setup.Finalize() // public key → clients; deliveries → members
	for i, m := range members {
		_ = m.ReceiveShares(deliveries[i])
	}

	// A round: clients encrypt (weighted) updates, the server adds them.
	const dim = 5
	agg, _ := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: 1, Dim: dim, Committee: committee})
	for c, update := range [][]float64{{1, 0, 0, 0.5, -1}, {0, 1, 0, 0.5, -1}, {0, 0, 1, 0.5, -1}} {
		enc, _ := secagg.NewEncryptor(params, publicKey, secagg.EncryptorConfig{ClientID: fmt.Sprint("client-", c)})
		upload, _ := enc.EncryptUpdate(1, update, 1) // client → server
		if err := agg.Add(upload); err != nil {
			panic(err)
		}
	}

	// Threshold decryption by any 3 online members.
	request, _ := agg.DecryptionRequest([]secagg.MemberID{2, 4, 5}) // server → members 2, 4, 5
	var shares []*secagg.DecryptionShare
	for _, id := range request.Members {
		share, err := members[id-1].DecryptionShare(request) // member → server
		if err != nil {
			panic(err)
		}
		shares = append(shares, share)
	}
	result, err := agg.Combine(shares)
	if err != nil {
		panic(err)
	}
	mean, _ := result.Mean()
	for i := range mean {
		mean[i] = math.Round(mean[i]*1000) / 1000
	}
	fmt.Println("count", result.Count, "mean", mean)
	// Output: count 3 mean [0.333 0.333 0.333 0.5 -1]
}

// Example_activeServer is the same protocol against an active server: every party has an
// identity issued by the federation's CA (here an in-memory one), signs what it sends and
// verifies what it receives, and members spot-check the aggregate before decrypting it.
func Example_activeServer() {
	params, _ := secagg.NewParameters(secagg.ParametersLiteral{LogN: 12})
	committee := secagg.CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	session := secagg.NewSessionID()
	ca, _ := identitytest.NewCA(1)
	verifier, _ := secagg.NewVerifier([]*x509.Certificate{ca.Certificate()}, nil)
	signer := func(name string) *secagg.Signer {
		id, _ := ca.Issue(name)
		s, _ := secagg.NewSigner(id.Certificate, id.Key)
		return s
	}

	setup, _ := secagg.NewAuthenticatedKeySetup(params, session, committee, verifier)
	members := make([]*secagg.Member, committee.Size)
	for i := range members {
		members[i], _ = secagg.NewMember(params, secagg.MemberConfig{Session: session, ID: secagg.MemberID(i + 1), Committee: committee,
			Signer: signer(fmt.Sprint("member-", i+1)), Verifier: verifier})
		_ = setup.AddAnnouncement(members[i].Announcement())
	}
	roster, _ := setup.Roster()
	for _, m := range members {
		dealing, err := m.Deal(roster) // refuses a roster not signed by distinct identities of the CA
		if err != nil {
			panic(err)
		}
		_ = setup.AddDealing(dealing)
	}
	publicKey, deliveries, _ := setup.Finalize()
	for i, m := range members {
		_ = m.ReceiveShares(deliveries[i])
	}

	const round, dim = 1, 3
	agg, _ := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: round, Dim: dim, Committee: committee,
		Purpose: secagg.PurposeFit, Verifier: verifier})
	for c, update := range [][]float64{{1, 0, 0.5}, {0, 1, 0.5}} {
		// NewEncryptor refuses a key it cannot trace to the CA's identities, or of a
		// committee below the client's floors.
		enc, err := secagg.NewEncryptor(params, publicKey, secagg.EncryptorConfig{Signer: signer(fmt.Sprint("client-", c)), Verifier: verifier, Floors: committee})
		if err != nil {
			panic(err)
		}
		upload, _ := enc.Encrypt(secagg.UploadContext{Round: round, Purpose: secagg.PurposeFit, TaskID: fmt.Sprint("task-", c)}, update, 1)
		if err := agg.Add(upload); err != nil {
			panic(err)
		}
	}

	request, _ := agg.DecryptionRequest([]secagg.MemberID{1, 3})
	var shares []*secagg.DecryptionShare
	for _, id := range request.Members {
		m := members[id-1]
		challenge, err := m.Challenge(request) // persist m.MarshalBinary() before sending
		if err != nil {
			panic(err)
		}
		opening, _ := agg.Open(challenge)
		share, err := m.DecryptionShare(request, opening)
		if err != nil {
			panic(err)
		}
		shares = append(shares, share)
	}
	result, _ := agg.Combine(shares)
	for i := range result.WeightedSum {
		result.WeightedSum[i] = math.Round(result.WeightedSum[i]*1000) / 1000
	}
	fmt.Println("count", result.Count, "sum", result.WeightedSum)
	// Output: count 2 sum [1 1 1]
}
