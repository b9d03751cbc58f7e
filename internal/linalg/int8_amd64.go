//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

// The kernels of int8_amd64.s accumulate a tile of 3×4 (or 1×4) dot products in 12 vector
// registers of int32 lanes and sum the lanes at the end. With AVX-512 VNNI each step loads
// 32 int16 values of each x and weight row and multiplies-and-adds them into the tile
// (VPDPWSSD); with AVX2, 16 values, multiplied in pairs (VPMADDWD) and added (VPADDD).

//go:noescape
func dot3x4AVX2(x, w *int16, k int, out *int32)

//go:noescape
func dot1x4AVX2(x, w *int16, k int, out *int32)

//go:noescape
func dot3x4VNNI(x, w *int16, k int, out *int32)

//go:noescape
func dot1x4VNNI(x, w *int16, k int, out *int32)

func init() {
	k3, k1 := dot3x4AVX2, dot1x4AVX2
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI:
		k3, k1 = dot3x4VNNI, dot1x4VNNI
		int8Kernel = "avx512-vnni"
	case cpu.X86.HasAVX2:
		int8Kernel = "avx2"
	default:
		return
	}
	dot3x4 = func(x, w []int16, k int, out *[3 * QuantChannels]int32) {
		_, _ = x[3*k-1], w[QuantChannels*k-1] // bounds: the kernel reads these rows
		k3(&x[0], &w[0], k, &out[0])
	}
	dot1x4 = func(x, w []int16, k int, out *[3 * QuantChannels]int32) {
		_, _ = x[k-1], w[QuantChannels*k-1]
		k1(&x[0], &w[0], k, &out[0])
	}
	if cpu.X86.HasAVX2 {
		avx2Kernels = [2]func(x, w []int16, k int, out *[3 * QuantChannels]int32){
			func(x, w []int16, k int, out *[3 * QuantChannels]int32) {
				_, _ = x[3*k-1], w[QuantChannels*k-1]
				dot3x4AVX2(&x[0], &w[0], k, &out[0])
			},
			func(x, w []int16, k int, out *[3 * QuantChannels]int32) {
				_, _ = x[k-1], w[QuantChannels*k-1]
				dot1x4AVX2(&x[0], &w[0], k, &out[0])
			},
		}
	}
}
