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
	// z is the noise multiplier accounted for; zUpdate the one applied to the update
	// (larger than z with adaptive clipping, which spends part of the budget on the count).
	z, zUpdate float64
	clipper    *dp.AdaptiveClipper // nil: fixed clip cfg.Clip
	noise      dp.NoiseSource

	// rounds is T, the rounds that sampled clients; population the fewest online clients
	// any of them sampled from, so that q = m / population bounds every client's chance
	// of taking part in a round.
	rounds     int
	population int
}

func newUserLevel(cfg UserLevelDPConfig, noise dp.NoiseSource) (*userLevel, error) {
	if noise == nil {
		return nil, fmt.Errorf("server: dp.user_level needs a noise source: set Options.Noise (dp.NewSecureNoise() in production, a dp.DeterministicNoise only for tests and reproducible simulations)")
	}
	zu, err := cfg.UpdateNoiseMultiplier()
	if err != nil {
		return nil, fmt.Errorf("server: dp.user_level: %w", err)
	}
	u := &userLevel{cfg: cfg, distributed: cfg.Mode == UserLevelDistributed, m: float64(cfg.ExpectedClients), z: cfg.NoiseMultiplier, zUpdate: zu, noise: noise}
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
	if u.distributed {
		sp.NoiseStd = u.zUpdate * s / math.Sqrt(u.m)
		if u.clipper != nil {
			sp.ClipIndicatorNoiseStd = u.clipper.DistributedCountNoiseStd()
		}
	}
	return sp
}

// release turns the sum of count clipped updates (each of clip norm s, with the clip
// indicator appended when adaptive) into what leaves the server: the sum with N(0, z_Δ²s²)
// on every coordinate — all of it drawn here in central mode; in distributed mode the
// clients' shares are already in the sum and the server draws only the top-up for the
// clients that did not report. The noisy indicator sum then updates the clip. It returns
// the noised update sum (without the indicator) and the round's DP metrics. sum is
// modified in place.
func (u *userLevel) release(sum []float64, count int, s float64) ([]float64, map[string]float64, error) {
	dim := len(sum) - u.extra()
	std, err := dp.CentralNoiseStd(u.zUpdate, s)
	if err != nil {
		return nil, nil, err
	}
	serverStd := std
	if u.distributed {
		// Fewer than m clients reported: their shares sum to less noise than accounted
		// for, so the server tops it up itself (and sees the sum with only the clients'
		// part of the noise while doing so).
		if serverStd, err = dp.TopUpNoiseStd(u.zUpdate, s, int(u.m), count); err != nil {
			return nil, nil, err
		}
	}
	if err := dp.AddGaussianNoise(sum[:dim], serverStd, u.noise); err != nil {
		return nil, nil, err
	}
	metrics := map[string]float64{"update_clip": s, "noise_std": std, "server_noise_std": serverStd}
	if u.clipper != nil {
		countStd := u.clipper.CountNoiseStd()
		if u.distributed {
			countStd *= math.Sqrt(max(0, 1-float64(count)/u.m))
		}
		noisy := sum[dim] + countStd*u.noise.Normal()
		next, err := u.clipper.Update(noisy)
		if err != nil {
			return nil, nil, err
		}
		metrics["unclipped_fraction"] = noisy / u.m
		metrics["next_update_clip"] = next
	}
	return sum[:dim:dim], metrics, nil
}

// epsilon is the user-level (ε, δ) of the rounds so far.
func (u *userLevel) epsilon() (accountant.Result, error) {
	if u.rounds == 0 {
		return accountant.Result{Delta: u.cfg.Delta}, nil
	}
	return dp.UserLevelEpsilon(dp.UserLevel{
		NoiseMultiplier: u.z, ClientsPerRound: min(u.m, float64(u.population)), Population: u.population,
		Rounds: u.rounds, Delta: u.cfg.Delta,
	}, accountant.Config{})
}

// UserLevelPrivacyRecord: the federation's user-level DP after a round that sampled
// clients: (Epsilon, Delta) of DP-FedAvg over Rounds rounds at sampling rate SampleRate
// and noise multiplier NoiseMultiplier, by the RDP accountant (Grid and Conversion name
// how ε was computed).
type UserLevelPrivacyRecord struct {
	Round           uint64  `json:"round"`
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Rounds          int     `json:"rounds"`
	Grid            string  `json:"grid"`
	Conversion      string  `json:"conversion"`
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
		SampleRate: u.sampleRate(u.population), Rounds: u.rounds, Grid: res.Grid, Conversion: res.Conversion.String(),
	}, nil
}
