//go:build !amd64 || purego

package secagg

// haveVecCoeffs is false: coeffAbove and checkAddCoeffs run their Go loops only.
var haveVecCoeffs = false

func maxCoeffsVec(p *byte, n int) uint64 { panic("secagg: no vector coefficient loops here") }

func checkAddCoeffsVec(dst *uint64, src *byte, n int, q uint64) int {
	panic("secagg: no vector coefficient loops here")
}
