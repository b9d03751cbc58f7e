//go:build !amd64 || purego

package linalg

func apply(op elementwiseOp, dst, src []float64) { scalar(op, dst, src) }
