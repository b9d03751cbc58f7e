//go:build amd64 && !purego

package dp

import (
	"slices"

	"golang.org/x/sys/cpu"
)

var hasAVX2 = cpu.X86.HasAVX2

// zigGroupsAVX2 is zigGroupsGeneric for n groups, in AVX2 (zigvec_amd64.s): refused has room
// for n entries, and it returns how many it wrote.
//
//go:noescape
func zigGroupsAVX2(dst *float64, buf *uint64, n int, std float64, refused *uint32) int

// zigGroups does what zigGroupsGeneric does, eight lanes at a time with AVX2.
func zigGroups(dst []float64, buf []uint64, std float64, refused []uint32) []uint32 {
	n := len(buf) / groupWords
	if !hasAVX2 || n == 0 {
		return zigGroupsGeneric(dst, buf, std, refused)
	}
	_ = dst[8*n-1]
	refused = slices.Grow(refused[:0], n)[:n]
	return refused[:zigGroupsAVX2(&dst[0], &buf[0], n, std, &refused[0])]
}
