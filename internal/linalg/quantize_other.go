//go:build !amd64 || purego

package linalg

// useQuantizeAVX2 is false: QuantizeRows runs its portable loop.
const useQuantizeAVX2 = false

var quantizeConsts [4]float64

func quantizeRowAVX2(dst *int16, x *float64, n int, inv float64, consts *[4]float64) {
	panic("linalg: quantizeRowAVX2 without AVX2")
}

func storeTileAVX2(dst *float64, ldd, rows int, xs, w *float64, out *int32, acc bool) {
	panic("linalg: storeTileAVX2 without AVX2")
}
