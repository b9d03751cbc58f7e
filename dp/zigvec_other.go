//go:build !amd64 || purego

package dp

// useAVX512 is false: there is no vector kernel here (the tests switch it on amd64).
var useAVX512 = false

// zigGroups is zigGroupsGeneric where there is no vector kernel.
func zigGroups(dst []float64, buf []uint64, std float64, refused []uint32) []uint32 {
	return zigGroupsGeneric(dst, buf, std, refused)
}
