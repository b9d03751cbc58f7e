//go:build amd64 && !purego

package dp

import (
	"slices"

	"golang.org/x/sys/cpu"
)

var (
	hasAVX2   = cpu.X86.HasAVX2
	useAVX512 = cpu.X86.HasAVX512F // a variable, so that tests can take the AVX2 kernel
)

// zigGroupsAVX2 is zigGroupsGeneric for n groups, in AVX2 (zigvec_amd64.s): refused has room
// for n entries, and it returns how many it wrote.
//
//go:noescape
func zigGroupsAVX2(dst *float64, buf *uint64, n int, std float64, refused *uint32) int

// zigGroupsAVX512 is zigGroupsAVX2 for 2·pairs groups, sixteen lanes at a time in AVX-512
// (zigvec_amd64.s): refused has room for 2·pairs entries.
//
//go:noescape
func zigGroupsAVX512(dst *float64, buf *uint64, pairs int, std float64, refused *uint32) int

// zigGroups does what zigGroupsGeneric does, sixteen lanes at a time with AVX-512 or eight
// with AVX2 (the last group of an odd number, and without AVX-512).
func zigGroups(dst []float64, buf []uint64, std float64, refused []uint32) []uint32 {
	n := len(buf) / groupWords
	if !hasAVX2 || n == 0 {
		return zigGroupsGeneric(dst, buf, std, refused)
	}
	_ = dst[8*n-1]
	refused = slices.Grow(refused[:0], n)[:n]
	done, r := 0, 0
	if useAVX512 && n >= 2 {
		done = n &^ 1
		r = zigGroupsAVX512(&dst[0], &buf[0], done/2, std, &refused[0])
	}
	if done < n {
		k := zigGroupsAVX2(&dst[8*done], &buf[groupWords*done], n-done, std, &refused[r])
		for i := r; i < r+k; i++ {
			refused[i] += uint32(done) << 8
		}
		r += k
	}
	return refused[:r]
}
