package secagg_test

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/secagg"
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
