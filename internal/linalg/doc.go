// Package linalg holds the few dense kernels all of Confide's layer math goes through:
// matrix multiply in its three transpose forms (NN, NT, TN), with overwrite or accumulate
// semantics, a blocked transpose, vector helpers, and ParallelFor, which spreads work over
// the cores through the same long-lived helper goroutines the multiplies use.
//
// Matrices are row-major []float64 with explicit dimensions. Inputs are never modified; only
// dst changes; dst must not alias an input. Dimension mismatches are programmer errors and
// panic (inputs here never come from files or the network). All functions are safe for
// concurrent use on disjoint destinations.
//
// The backend is chosen once at start-up: on amd64 with AVX2 and FMA, a cache-blocked
// multiply around a 6×8 register-blocked assembly micro-kernel (gemm_amd64.go), with C split
// by rows or columns across Workers; elsewhere, or with the purego build tag, gonum's
// pure-Go BLAS. Products of at most a few hundred multiply-adds use a plain loop on either.
// Each is tested against the naive triple loop in this package's tests. Results differ
// between backends only by rounding (the order of the sums).
package linalg
