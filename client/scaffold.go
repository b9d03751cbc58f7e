package client

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// controlStateName is the Store entry of the client's SCAFFOLD control variate c_i.
const controlStateName = "scaffold-control.bin"

// controlMagic starts a stored control variate; the model's fingerprint follows, then the
// values (little-endian float64).
const controlMagic = "confide-scaffold-1\n"

// scaffoldRound is SCAFFOLD's client side of one fit task (Karimireddy et al. 2020,
// Algorithm 1, option II): the server's c, the client's c_i, and the correction c − c_i
// the trainer adds to every local gradient.
type scaffoldRound struct {
	server, own []float64
	clip        float64
	fingerprint []byte
}

// startScaffold reads the task's control variate and the client's own (zero for a model
// it has none for: a model that changed shape starts afresh) and returns the correction.
func (p *Party) startScaffold(t *pb.Task, sc *pb.ScaffoldSpec, dim int, secure bool) (*scaffoldRound, []float64, error) {
	clip := sc.GetControlClipNorm()
	if math.IsNaN(clip) || math.IsInf(clip, 0) || clip < 0 || (secure && clip == 0) {
		return nil, nil, fmt.Errorf("scaffold.control_clip_norm %v: must be finite and ≥ 0, and > 0 under secure aggregation", clip)
	}
	b, err := blob.Find(t.GetBlobs(), blob.Control)
	if err != nil {
		return nil, nil, fmt.Errorf("scaffold: %w", err)
	}
	server, err := blob.DecodeFloats(b, dim)
	if err != nil {
		return nil, nil, fmt.Errorf("scaffold control variate: %w", err)
	}
	fp := controlFingerprint(t.GetFit().GetModel())
	own, err := p.loadControl(fp, dim)
	if err != nil {
		return nil, nil, err
	}
	corr := make([]float64, dim)
	for i := range corr {
		corr[i] = server[i] - own[i]
	}
	return &scaffoldRound{server: server, own: own, clip: clip, fingerprint: fp}, corr, nil
}

// finish computes Δc_i = c_i⁺ − c_i with c_i⁺ = c_i − c + (x − y)/(K·η) for the local
// model y after K steps of learning rate η from the global x, clips it, stores c_i + Δc_i
// and returns Δc_i (to be appended to the update).
func (s *scaffoldRound) finish(p *Party, global, local []float64, steps int, lr float64) ([]float64, error) {
	if steps < 1 {
		return nil, errors.New("scaffold: the trainer reports no local steps (FitResult.Steps), which the control variate needs")
	}
	if !(lr > 0) || math.IsInf(lr, 0) {
		return nil, fmt.Errorf("scaffold: learning rate %v: must be positive", lr)
	}
	scale := 1 / (float64(steps) * lr)
	dc := make([]float64, len(global))
	for i := range dc {
		dc[i] = -s.server[i] + (global[i]-local[i])*scale
	}
	if err := checkFinite(dc); err != nil {
		return nil, fmt.Errorf("scaffold control variate: %w", err)
	}
	clipL2(dc, s.clip)
	next := make([]float64, len(dc))
	for i := range next {
		next[i] = s.own[i] + dc[i]
	}
	if err := p.saveControl(s.fingerprint, next); err != nil {
		return nil, err
	}
	return dc, nil
}

// controlFingerprint identifies the model a control variate belongs to.
func controlFingerprint(m *pb.ModelSpec) []byte {
	h := sha256.Sum256(m.GetSpecJson())
	return h[:]
}

func (p *Party) loadControl(fp []byte, dim int) ([]float64, error) {
	b, err := p.cfg.Store.Load(controlStateName)
	if errors.Is(err, fs.ErrNotExist) {
		return make([]float64, dim), nil
	}
	if err != nil {
		return nil, &fatalError{err}
	}
	head := len(controlMagic) + len(fp)
	if len(b) != head+8*dim || !bytes.HasPrefix(b, []byte(controlMagic)) || !bytes.Equal(b[len(controlMagic):head], fp) {
		return make([]float64, dim), nil // another model's (or unreadable): start from zero
	}
	c, err := blob.DecodeFloats(b[head:], dim)
	if err != nil {
		return make([]float64, dim), nil
	}
	return c, nil
}

func (p *Party) saveControl(fp []byte, c []float64) error {
	b := append(append([]byte(controlMagic), fp...), blob.EncodeFloats(c)...)
	if err := p.cfg.Store.Save(controlStateName, b); err != nil {
		return &fatalError{fmt.Errorf("storing the SCAFFOLD control variate: %w", err)}
	}
	return nil
}

// corrected adds SCAFFOLD's correction c − c_i to every gradient before the wrapped
// optimizer's step. Under DP-SGD it is added after the noise and does not depend on this
// step's data, so it costs no privacy.
type corrected struct {
	base model.Optimizer
	corr []float64
}

func (c *corrected) Step(params, grads []float64) {
	for i := range grads {
		grads[i] += c.corr[i]
	}
	c.base.Step(params, grads)
}
func (c *corrected) SetLR(lr float64) { c.base.SetLR(lr) }
func (c *corrected) LR() float64      { return c.base.LR() }
