package client_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"google.golang.org/protobuf/proto"
)

// TestDistributedNoiseSharesFollowTheKeysCommittee: the attack of a server that tells the
// clients of a dp.distributed round that every decrypted sum holds m' = 100 updates while
// its key committee (whose members decide what they decrypt) enforces m = 2. Sized by the
// task's m', each client would add noise σ/10 instead of σ/√2, and a sum of two updates
// would carry σ·√2/10 ≈ 0.14σ of the σ the ledgers record. The client refuses before
// training, since the task's committee is not the one that made the key; a task that
// states the key's committee trains and uploads.
func TestDistributedNoiseSharesFollowTheKeysCommittee(t *testing.T) {
	c := newTestCommittee(t, false)
	sp, session, pkb := c.sp, c.session, c.pkb
	task := func(claimed int32) *pb.Task {
		claim := proto.CloneOf(sp)
		claim.MinContributions = claimed
		tk := fitTask(blobSpec, zeros(), &pb.FitSpec{Optimizer: "sgd", LearningRate: 1, WeightScale: 40, UpdateClipNorm: 10, MaxWeight: 1,
			Dp:     &pb.DPSpec{NoiseMultiplier: 4, MaxGradNorm: 1, SampleRate: 1, Steps: 1, Distributed: true},
			Secagg: &pb.SecAggSpec{Session: session[:], Params: claim}})
		tk.Blobs = append(tk.Blobs, blob.New(blob.PublicKey, pkb))
		return tk
	}
	tr := &countingTrainer{}
	p, err := client.NewParty(client.PartyConfig{ClientID: "c1"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Handle(t.Context(), task(100))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(res.Reason, "min_contributions 100 differ from 3, 2, 2") || tr.fits != 0 {
		t.Fatalf("a task claiming min_contributions 100 for a committee of m = 2: %v %q after %d trainings, want a refusal before training", res.Status, res.Reason, tr.fits)
	}
	res, err = p.Handle(t.Context(), task(2))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pb.ResultStatus_RESULT_STATUS_OK || tr.fits != 1 || len(res.GetBlobs()) != 1 || res.GetBlobs()[0].GetName() != blob.EncryptedUpdate {
		t.Fatalf("the key's own committee: %v %q after %d trainings, want an encrypted update", res.Status, res.Reason, tr.fits)
	}
	// Training statistics would leave un-noised inside the sum; a client with
	// LocalNoiseOnly takes no share-sized noise at all. Both refuse before training.
	withStats := task(2)
	withStats.Round = 2
	withStats.GetFit().Statistics = &pb.StatisticsSpec{LossCap: 20}
	res, err = p.Handle(t.Context(), withStats)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(res.Reason, "training statistics under distributed noise") || tr.fits != 1 {
		t.Fatalf("statistics under distributed noise: %v %q after %d trainings, want a refusal before training", res.Status, res.Reason, tr.fits)
	}
	local, err := client.NewParty(client.PartyConfig{ClientID: "c2", LocalNoiseOnly: true}, tr)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = local.Handle(t.Context(), task(2)); err != nil {
		t.Fatal(err)
	}
	if res.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(res.Reason, "local-noise-only") || tr.fits != 1 {
		t.Fatalf("a local-noise-only client: %v %q after %d trainings, want a refusal before training", res.Status, res.Reason, tr.fits)
	}
}
