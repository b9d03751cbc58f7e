package client

import (
	"errors"
	"fmt"
	"math"

	"github.com/confide-fl/confide/dp"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// distributedNoise checks a fit task with dp.distributed against what the guarantee needs
// and fills cfg.DP's distributed fields. The task must be one DP-SGD step of plain SGD (so
// the update is −lr·(P(Σ clip g) + ξ)/(q·ws), linear in the noised sum; Adam's or a second
// step's nonlinearity would act on data that carries only a share of the noise), under
// secure aggregation (the sum of at least m = min_contributions updates is all anyone
// decrypts: m is the key committee's, which Party.encryptor has checked the task states,
// and every two sets of threshold members overlap, which secAggParams checks for every
// task, so the members open one sum a round)
// and without user-level DP or SCAFFOLD (whose guarantees do not cover it).
// The sum clip (dp.DistributedStep.SumClip) keeps ‖Δ‖ ≤ S, the update clip applied after
// the noise, except with probability ≈ 5·10⁻³². Every check depends on the task alone, so a refusal reveals
// nothing about the client's data.
func distributedNoise(cfg *FitConfig, spec *pb.FitSpec, dim int) error {
	d := spec.GetDp()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	sa := spec.GetSecagg()
	if sa == nil {
		bad("needs secure aggregation (only sums of the clients' noise shares are ever decrypted)")
	}
	if spec.GetUserLevelDp() != nil || spec.GetScaffold() != nil {
		bad("does not combine with user-level DP or SCAFFOLD")
	}
	if b := sa.GetParams().GetValueBits(); b != 0 {
		bad("needs secure aggregation's float encoding: the packed encoding (value_bits %d) would round this client's update after its noise share is drawn, which the accounting does not cover", b)
	}
	if !(d.GetNoiseMultiplier() > 0) {
		bad("needs a DP-SGD noise multiplier > 0")
	}
	if d.GetSteps() != 1 {
		bad("takes one DP-SGD step a round (dp.steps = 1), not %d: a second local step would act on an update that carries only a share of the noise", d.GetSteps())
	}
	o := cfg.Optimizer
	if (o.Name != "" && o.Name != "sgd") || o.Nesterov || o.WeightDecay != 0 || cfg.Warmup != 0 {
		bad("needs plain SGD (training.optimizer sgd, no nesterov, weight_decay or warmup), whose one step is linear in the noised gradient; got optimizer %q, nesterov %v, weight_decay %v, warmup %d", o.Name, o.Nesterov, o.WeightDecay, cfg.Warmup)
	}
	ws, S := spec.GetWeightScale(), spec.GetUpdateClipNorm()
	if !(ws > 0) || math.IsInf(ws, 0) || !(S > 0) || math.IsInf(S, 0) {
		bad("needs a positive training.weight_scale (%v) and dp.update_clip_norm (%v)", ws, S)
	}
	if len(errs) > 0 {
		return fmt.Errorf("dp.distributed: %w", errors.Join(errs...))
	}
	m := int(sa.GetParams().GetMinContributions())
	if m < 1 {
		return fmt.Errorf("dp.distributed: secure aggregation min_contributions %d: must be ≥ 1", m)
	}
	st := dp.DistributedStep{NoiseMultiplier: d.GetNoiseMultiplier(), MaxGradNorm: d.GetMaxGradNorm(), SampleRate: d.GetSampleRate(),
		WeightScale: ws, LR: o.LR, UpdateClip: S, Shares: m, Dim: dim}
	R, err := st.SumClip()
	if err != nil {
		return err
	}
	cfg.DP.NoiseShares, cfg.DP.ExpectedBatch, cfg.DP.SumClip = m, st.SampleRate*ws, R
	return nil
}
