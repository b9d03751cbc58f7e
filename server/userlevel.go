package server

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// userLevel is the coordinator's DP-FedAvg state (McMahan et al. 2018): the clip norm of
// the coming round (fixed, or tracked by adaptive clipping, Andrew et al. 2021), the noise
// calibration, and the bookkeeping of the user-level accountant. It draws noise only from
// the injected source.
type userLevel struct {
	cfg         UserLevelDPConfig
	distributed bool
	m           float64
	// mMin is the fewest updates any decrypted sum holds (the committee's
	// min_contributions): distributed noise shares are sized so that mMin of them make
	// the accounted noise.
	mMin int
	// z is the noise multiplier accounted for; zUpdate the one applied to the update
	// (larger than z with adaptive clipping, which spends part of the budget on the count).
	z, zUpdate float64
	clipper    *dp.AdaptiveClipper // nil: fixed clip cfg.Clip
	// discrete, in distributed mode with the packed encoding, is the distributed discrete
	// Gaussian the clients' shares of variance variance (squared steps) make; nil otherwise.
	discrete *dp.DiscreteUserLevel
	variance uint64
	noise    dp.NoiseSource
	acct     accountant.Config // dp.accountant

	// rounds is T, the rounds that sampled clients; population the fewest online clients
	// any of them sampled from, so that q = m / population bounds every client's chance
	// of taking part in a round.
	rounds     int
	population int
}

// newUserLevel returns the user-level state; minContributions is the fewest updates the key
// committee decrypts a sum of (secure_aggregation.min_contributions), to which distributed
// noise shares are calibrated; acct accounts the rounds.
func newUserLevel(cfg UserLevelDPConfig, minContributions int, noise dp.NoiseSource, acct accountant.Config) (*userLevel, error) {
	if noise == nil {
		return nil, fmt.Errorf("server: dp.user_level needs a noise source: set Options.Noise (dp.NewSecureNoise() in production, a dp.DeterministicNoise only for tests and reproducible simulations)")
	}
	zu, err := cfg.UpdateNoiseMultiplier()
	if err != nil {
		return nil, fmt.Errorf("server: dp.user_level: %w", err)
	}
	u := &userLevel{cfg: cfg, distributed: cfg.Mode == UserLevelDistributed, m: float64(cfg.ExpectedClients), mMin: minContributions, z: cfg.NoiseMultiplier, zUpdate: zu, noise: noise, acct: acct}
	if cfg.IsAdaptive() {
		if u.clipper, err = dp.NewAdaptiveClipper(cfg.Adaptive.literal(cfg.ExpectedClients)); err != nil {
			return nil, fmt.Errorf("server: dp.user_level.adaptive: %w", err)
		}
	}
	return u, nil
}

// clip is the clip norm S of the next round.
func (u *userLevel) clip() float64 {
	if u.clipper != nil {
		return u.clipper.Clip()
	}
	return u.cfg.Clip
}

// extra is the number of values clients append to their update: the clip indicator.
func (u *userLevel) extra() int {
	if u.clipper != nil {
		return 1
	}
	return 0
}

// sampleRate is the Poisson sampling probability of a round with avail clients online.
func (u *userLevel) sampleRate(avail int) float64 {
	if avail < 1 {
		return 0
	}
	return min(1, u.m/float64(avail))
}

// sampled notes that a round sampled clients from avail online ones.
func (u *userLevel) sampled(avail int) {
	u.rounds++
	if u.population == 0 || avail < u.population {
		u.population = avail
	}
}

// spec is what a fit task with clip norm s asks of its client.
func (u *userLevel) spec(s float64) *pb.UserLevelDPSpec {
	sp := &pb.UserLevelDPSpec{ClipIndicator: u.clipper != nil}
	if u.distributed && u.discrete == nil { // discrete shares come with the secure-aggregation parameters
		sp.NoiseStd = u.zUpdate * s / math.Sqrt(float64(u.mMin))
		if u.clipper != nil {
			sp.ClipIndicatorNoiseStd = u.clipper.DistributedCountNoiseStd(u.mMin)
		}
	}
	return sp
}

// release turns the sum of count clipped updates (each of clip norm s, with the centred
// clip indicator appended when adaptive) into what leaves the server: the sum with at least
// N(0, z_Δ²s²) on every coordinate. In central mode the server draws all of it here. In
// distributed mode the clients' shares are already in the sum: each client added
// N(0, z_Δ²s²/m_min) and the committee decrypts only sums of count ≥ m_min updates, so the
// decrypted sum already carries the accounted noise and the server adds nothing (it never
// sees a sum with less). The noisy indicator sum then updates the clip. It returns the noised
// update sum (without the indicator) and the round's DP metrics. sum is modified in place.
func (u *userLevel) release(sum []float64, count int, s float64) ([]float64, map[string]float64, error) {
	dim := len(sum) - u.extra()
	std, err := dp.CentralNoiseStd(u.zUpdate, s)
	if err != nil {
		return nil, nil, err
	}
	// sum_noise_std and count_noise_std are the least noise any sum decrypted or released
	// this round carries on an update coordinate and on the indicator sum: what an
	// independent check of the accountant's noise multiplier needs.
	metrics := map[string]float64{"update_clip": s, "noise_std": std, "server_noise_std": std, "sum_noise_std": std}
	countStd := 0.0
	if u.clipper != nil {
		countStd = u.clipper.CountNoiseStd()
		metrics["count_noise_std"] = countStd
	}
	if u.distributed {
		if count < u.mMin {
			return nil, nil, fmt.Errorf("%d updates in the sum, fewer than the %d its noise shares were sized for (secure_aggregation.min_contributions)", count, u.mMin)
		}
		share, err := dp.DistributedNoiseStd(u.zUpdate, s, u.mMin)
		if err != nil {
			return nil, nil, err
		}
		if u.discrete != nil {
			// Integer shares of variance σ_z² steps², in the update's units.
			share = math.Sqrt(float64(u.variance)) * u.discrete.Step
		}
		// What the decrypted sum carries: count shares; at least m_min of them.
		metrics["noise_std"] = share * math.Sqrt(float64(count))
		metrics["sum_noise_std"] = share * math.Sqrt(float64(u.mMin))
		metrics["server_noise_std"] = 0
		metrics["client_noise_std"] = share
		if u.clipper != nil {
			metrics["count_noise_std"] = u.clipper.DistributedCountNoiseStd(u.mMin) * math.Sqrt(float64(u.mMin))
		}
		std, countStd = 0, 0
	}
	if err := dp.AddGaussianNoise(sum[:dim], std, u.noise); err != nil {
		return nil, nil, err
	}
	if u.clipper != nil {
		noisy := sum[dim] + countStd*u.noise.Normal()
		next, err := u.clipper.Update(noisy)
		if err != nil {
			return nil, nil, err
		}
		metrics["unclipped_fraction"] = noisy/u.m + 0.5
		metrics["next_update_clip"] = next
	}
	return sum[:dim:dim], metrics, nil
}

// epsilon is the user-level (ε, δ) of the rounds so far.
func (u *userLevel) epsilon() (accountant.Result, error) {
	if u.discrete != nil {
		return u.discrete.Epsilon(u.rounds, u.cfg.Delta, u.acct)
	}
	if u.rounds == 0 {
		return accountant.Result{Delta: u.cfg.Delta, Method: u.acct.Method}, nil
	}
	return dp.UserLevelEpsilon(dp.UserLevel{
		NoiseMultiplier: u.z, ClientsPerRound: min(u.m, float64(u.population)), Population: u.population,
		Rounds: u.rounds, Delta: u.cfg.Delta,
	}, u.acct)
}

// UserLevelPrivacyRecord: the federation's user-level DP after a round that sampled
// clients: (Epsilon, Delta) of DP-FedAvg over Rounds rounds at sampling rate SampleRate
// and noise multiplier NoiseMultiplier, by the accountant Accountant ("rdp" or "prv";
// empty in records written before it was recorded: rdp), and Accounting says how (for RDP
// also Grid and Conversion).
type UserLevelPrivacyRecord struct {
	Round           uint64  `json:"round"`
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Rounds          int     `json:"rounds"`
	// Clip is the clip norm of the next round (adaptive clipping moves it), so a restarted
	// server continues with it.
	Clip       float64 `json:"next_clip,omitempty"`
	Grid       string  `json:"grid"`
	Conversion string  `json:"conversion"`
	Accountant string  `json:"accountant,omitempty"`
	Accounting string  `json:"accounting,omitempty"`
}

func (UserLevelPrivacyRecord) isRecord() {}

// userLevelRecord accounts the rounds so far and returns the record to persist.
func (c *Coordinator) userLevelRecord(round uint64) (UserLevelPrivacyRecord, error) {
	u := c.ul
	res, err := u.epsilon()
	if err != nil {
		return UserLevelPrivacyRecord{}, fmt.Errorf("user-level accounting: %w", err)
	}
	return UserLevelPrivacyRecord{
		Round: round, Epsilon: res.Epsilon, Delta: res.Delta, NoiseMultiplier: u.z,
		SampleRate: u.sampleRate(u.population), Rounds: u.rounds, Clip: u.clip(), Grid: res.Grid, Conversion: res.Conversion.String(),
		Accountant: res.Method.String(), Accounting: u.describe(res),
	}, nil
}

// describe says how res was accounted.
func (u *userLevel) describe(res accountant.Result) string {
	if u.discrete != nil {
		return dp.DescribeDiscrete(res)
	}
	return res.Describe()
}
