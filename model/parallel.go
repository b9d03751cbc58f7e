package model

import "github.com/confide-fl/confide/internal/linalg"

// minParallelWork is the amount of work (roughly, multiply-adds) below which parallelFor
// runs on the calling goroutine.
const minParallelWork = linalg.MinParallelFor

// parallelFor runs f over contiguous ranges covering [0,n), spread over the linalg workers
// when the total work (n × perItem, roughly multiply-adds) pays for the hand-off; w is the
// index of the worker running the range (its calls run one after another), so f can use
// per-worker scratch buffers. See linalg.ParallelFor: the ranges run on long-lived helpers,
// a few per worker, handed out as workers become free.
func parallelFor(n, perItem int, f func(w, lo, hi int)) { linalg.ParallelFor(n, perItem, f) }

// numWorkers is the number of distinct w values parallelFor may pass.
func numWorkers() int { return max(1, linalg.Workers) }

// seqGradSqNorm returns ‖Σ_t a_tᵀg_t‖² (plus ‖Σ_t g_t‖² when bias) for one example's T rows
// a (T×in) and g (T×out): the squared norm of the example's gradient of a weight applied at
// every row (and of its bias). It picks the cheaper exact method by multiply-add count:
//   - Gram form (Li et al. 2022, "ghost clipping"): Σ_{t,t'}(a_t·a_t' [+1])(g_t·g_t'), from the
//     two T×T Gram matrices, O(T²(in+out));
//   - materialised: form Σ_t a_tᵀg_t (in×out) with one multiply, O(T·in·out), as Opacus'
//     "mixed" mode does when that is smaller.
//
// scratch is grown as needed and reused.
//
// The products run in F; the squared norm is returned, and the Gram form summed, in float64.
func seqGradSqNorm[F linalg.Float](a, g []F, T, in, out int, bias bool, scratch *[]F) float64 {
	one := 0.0
	if bias {
		one = 1
	}
	if T == 1 {
		return (float64(linalg.SumSq(a[:in])) + one) * float64(linalg.SumSq(g[:out]))
	}
	if gramCheaper(T, in, out) {
		*scratch = grow(*scratch, 2*T*T)
		ga, gg := (*scratch)[:T*T], (*scratch)[T*T:2*T*T]
		linalg.MulNT(ga, a, a, T, in, T, false)
		linalg.MulNT(gg, g, g, T, out, T, false)
		s := 0.0
		for k, v := range gg {
			s += (float64(ga[k]) + one) * float64(v)
		}
		return s
	}
	*scratch = grow(*scratch, in*out+out)
	return formGrad(*scratch, a, g, T, in, out, bias)
}

// gramCheaper reports whether seqGradSqNorm's Gram form, O(T²(in+out)), costs fewer
// multiply-adds than forming the gradient, O(T·in·out).
func gramCheaper(T, in, out int) bool { return T*(in+out) < in*out }

// formGrad writes one example's gradient Σ_t a_tᵀg_t (in×out), then Σ_t g_t when bias, to
// dst and returns its squared norm.
func formGrad[F linalg.Float](dst, a, g []F, T, in, out int, bias bool) float64 {
	gw := dst[:in*out]
	linalg.MulTN(gw, a, g, in, T, out, false)
	s := float64(linalg.SumSq(gw))
	if bias {
		gb := dst[in*out : in*out+out]
		clear(gb)
		linalg.SumRows(gb, g, T, out)
		s += float64(linalg.SumSq(gb))
	}
	return s
}

// mulTNAcc adds aᵀ·b to dst (a k×m, b k×n). linalg blocks the depth k itself, so with k in
// the thousands (all B·T rows of a sequence batch) the slivers it reuses stay in cache.
func mulTNAcc[F linalg.Float](dst, a, b []F, m, k, n int) {
	linalg.MulTN(dst, a, b, m, k, n, true)
}
