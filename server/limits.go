package server

import (
	"github.com/confide-fl/confide/data"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// outstanding returns the open task taskID of client, or the rejection a result for it gets:
// unknown, answered already, expired, or assigned to another client.
func (c *Coordinator) outstanding(client, taskID string) (*taskState, error) {
	ts, ok := c.tasks[taskID]
	if !ok {
		if cl, ok := c.closed[taskID]; ok {
			switch {
			case cl.client != client:
				return nil, reject(RejectWrongClient, "task %s was assigned to another client", taskID)
			case cl.answered:
				return nil, reject(RejectDuplicate, "task %s was already answered", taskID)
			}
			return nil, reject(RejectLate, "task %s expired: its deadline passed or its phase ended", taskID)
		}
		return nil, reject(RejectUnknownTask, "task %s was never issued (or belongs to a finished round)", taskID)
	}
	if ts.client != client {
		return nil, reject(RejectWrongClient, "task %s was assigned to another client", taskID)
	}
	return ts, nil
}

// maxCertificateBytes bounds the DER certificate a signed upload or announcement carries
// (a client certificate of the federation's CA is well under 1 KB).
const maxCertificateBytes = 8192

// ResultLimit checks, before any of its data is read, that client may push a result for
// taskID (the task is outstanding and was assigned to client), and returns the most blob
// bytes that result can legitimately hold:
//
//	fit        the update: 8 bytes per value in the clear, secagg's update size under
//	           secure aggregation (dimension, client id and task id known; a certificate
//	           and signature when uploads are signed)
//	key setup  the stage's message: an announcement, a dealing for the committee, nothing
//	evaluate   under secure aggregation the encrypted statistics; otherwise nothing
//	           (an opted-in client's noised metrics travel in the header)
//	decrypt    a challenge, or one decryption share for the aggregate being opened
//	statistics the noised sums of the dataset's estimates: encrypted under secure
//	           aggregation, 3 values an estimate otherwise
//
// A transport reserves no memory for a result beyond this bound, so a client can make the
// server hold only what its task could produce. It changes no state.
func (c *Coordinator) ResultLimit(client, taskID string) (int64, error) {
	if _, err := c.client(client); err != nil {
		return 0, err
	}
	if taskID == "" {
		return 0, reject(RejectInvalid, "result from %q names no task", client)
	}
	ts, err := c.outstanding(client, taskID)
	if err != nil {
		return 0, err
	}
	values := c.dim + c.extra() // what a client encrypts or sends: the update and appended values
	upload := func(values int) int64 {
		if c.verifier != nil {
			return int64(c.sa.SignedUpdateBytes(values, len(client), len(ts.id), maxCertificateBytes))
		}
		// Unsigned: exact (the task id travels in the upload, no certificate or signature).
		return int64(c.sa.SignedUpdateBytes(values, len(client), len(ts.id), 0) - secagg.MaxSignatureBytes)
	}
	switch ts.kind {
	case pb.TaskKind_TASK_KIND_FIT:
		if c.sa != nil {
			return upload(values), nil
		}
		return 8 * int64(values), nil
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		switch ts.stage {
		case pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE:
			if c.verifier != nil {
				return int64(c.sa.SignedAnnouncementBytes(maxCertificateBytes)), nil
			}
			return int64(c.sa.AnnouncementBytes()), nil
		case pb.KeySetupStage_KEY_SETUP_STAGE_DEAL:
			if c.verifier != nil {
				return int64(c.sa.SignedDealingBytes(c.cfg.SecAgg.CommitteeSize)), nil
			}
			return int64(c.sa.DealingBytes(c.cfg.SecAgg.CommitteeSize)), nil
		}
		return 0, nil
	case pb.TaskKind_TASK_KIND_EVALUATE:
		if c.sa != nil {
			return upload(statisticSlots), nil
		}
		return 0, nil
	case pb.TaskKind_TASK_KIND_STATISTICS:
		if c.sa != nil {
			return upload(data.StatisticsSlots * len(c.cfg.Dataset.Estimates())), nil
		}
		return 8 * int64(data.StatisticsSlots*len(c.cfg.Dataset.Estimates())), nil
	case pb.TaskKind_TASK_KIND_DECRYPT:
		if ts.decStage == pb.DecryptStage_DECRYPT_STAGE_CHALLENGE {
			return int64(c.sa.ChallengeBytes()), nil
		}
		if c.dec != nil && c.dec.eval {
			values = statisticSlots
		}
		if c.dec != nil && c.dec.stats {
			values = data.StatisticsSlots * len(c.cfg.Dataset.Estimates())
		}
		return int64(c.sa.DecryptionShareBytes(values, c.cfg.SecAgg.Threshold)), nil
	}
	return 0, nil
}
