//go:build !amd64 || purego

package dp

// zigGroups is zigGroupsGeneric where there is no vector kernel.
func zigGroups(dst []float64, buf []uint64, std float64, refused []uint32) []uint32 {
	return zigGroupsGeneric(dst, buf, std, refused)
}
