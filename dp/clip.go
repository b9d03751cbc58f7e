package dp

import (
	"fmt"
	"math"
)

// L2Norm returns the Euclidean norm of v, computed with scaling (as BLAS dnrm2) so that it
// neither overflows nor underflows for any finite v. It is +Inf or NaN if v holds a
// non-finite value.
func L2Norm(v []float64) float64 {
	scale, ssq := 0.0, 1.0
	for _, x := range v {
		if x == 0 {
			continue
		}
		if math.IsNaN(x) {
			return math.NaN()
		}
		ax := math.Abs(x)
		if math.IsInf(ax, 1) {
			return math.Inf(1)
		}
		if scale < ax {
			r := scale / ax
			ssq = 1 + ssq*r*r
			scale = ax
		} else {
			r := ax / scale
			ssq += r * r
		}
	}
	return scale * math.Sqrt(ssq)
}

// ClipFactor returns min(1, c/norm), the factor that scales a vector of the given L2 norm
// to norm at most c (Abadi et al. 2016: g·min(1, C/‖g‖)). A zero norm gives 1; a NaN or
// infinite norm gives 0, so a broken example contributes nothing and the sensitivity
// bound still holds. With per-example norms from ghost clipping, the clipped sum is
// Σ_i ClipFactor(‖g_i‖, C)·g_i.
func ClipFactor(norm, c float64) float64 {
	switch {
	case math.IsNaN(norm) || math.IsInf(norm, 1):
		return 0
	case norm <= c:
		return 1
	}
	return c / norm
}

// ClipL2 scales v in place so that its L2 norm is at most c and returns the factor
// applied (see ClipFactor; a v with NaN or ±Inf is zeroed). The clip norm c must be finite
// and ≥ 0 — validate configuration with ValidateClipNorm; an invalid c is a programming
// error and panics.
func ClipL2(v []float64, c float64) (scale float64) {
	if err := ValidateClipNorm(c); err != nil {
		panic(err)
	}
	scale = ClipFactor(L2Norm(v), c)
	if scale == 0 {
		clear(v)
		return 0
	}
	if scale != 1 {
		for i := range v {
			v[i] *= scale
		}
	}
	return scale
}

// ValidateClipNorm reports whether c is a usable clip norm: finite and ≥ 0.
func ValidateClipNorm(c float64) error {
	if math.IsNaN(c) || c < 0 || math.IsInf(c, 0) {
		return fmt.Errorf("dp: clip norm %v: must be finite and ≥ 0", c)
	}
	return nil
}
