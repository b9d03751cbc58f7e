//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

// useQuantizeAVX2 selects quantizeRowAVX2 for QuantizeRows.
var useQuantizeAVX2 = cpu.X86.HasAVX2

// quantizeConsts are the broadcast operands of quantizeRowAVX2: the clamp bounds, the
// rounding half and the sign mask (−0 has only the sign bit set).
var quantizeConsts = [4]float64{127, -127, 0.5, negZero}

var negZero = func() float64 { z := 0.0; return -z }()

// quantizeRowAVX2 sets dst[p] = int16(r + copysign(0.5, r)) with r = x[p]·inv clamped to
// [−127, 127], for p < n (a multiple of 4): QuantizeRows' loop, 4 values an instruction,
// the same results (truncation after adding ±0.5 rounds half away from zero).
//
//go:noescape
func quantizeRowAVX2(dst *int16, x *float64, n int, inv float64, consts *[4]float64)

// storeTileAVX2 is storeTile for 4 channels a row, one vector a row: (xs[r]·w)·out is
// formed in the order storeTile forms it, so the results are the same bit for bit.
//
//go:noescape
func storeTileAVX2(dst *float64, ldd, rows int, xs, w *float64, out *int32, acc bool)
