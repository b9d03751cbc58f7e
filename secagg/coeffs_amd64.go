//go:build amd64 && !purego

package secagg

import "golang.org/x/sys/cpu"

// haveVecCoeffs reports whether the AVX-512 loops of coeffs_amd64.s run here.
var haveVecCoeffs = cpu.X86.HasAVX512F

// maxCoeffsVec returns the largest of the n little-endian uint64s at p (n a positive
// multiple of 32).
//
//go:noescape
func maxCoeffsVec(p *byte, n int) uint64

// checkAddCoeffsVec adds the n little-endian uint64s at src to the n at dst modulo q (n a
// positive multiple of 32), 32 at a time, each group only if all of its 32 are below q; it
// stops before the first group that is not and returns the number added.
//
//go:noescape
func checkAddCoeffsVec(dst *uint64, src *byte, n int, q uint64) int
