//go:build !amd64 || purego

package linalg

// descendFast handles the longest prefix the platform's vector kernel can and returns its
// length: none without one.
func descendFast(_, _ []float64, _, _ float64) int { return 0 }

func descendNarrowFast(_, _ []float64, _ []float32, _, _ float64) int { return 0 }

func descendDrainFast(_ []float64, _, _ []float32, _, _ float64) int { return 0 }

func descendDrainNoiseFast(_ []float64, _ []float32, _ []float64, _ float64, _ []float32, _, _ float64) int {
	return 0
}
