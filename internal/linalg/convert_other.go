//go:build !amd64 || purego

package linalg

// narrowFast and drainFast handle the longest prefix the platform's vector kernels can
// and return its length: none without them.
func narrowFast([]float32, []float64) int { return 0 }

func drainFast([]float64, []float32) int { return 0 }
