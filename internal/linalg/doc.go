// Package linalg holds the few dense kernels all of Confide's layer math goes through:
// matrix multiply in its three transpose forms (NN, NT, TN), with overwrite or accumulate
// semantics, and a blocked transpose.
//
// Matrices are row-major []float64 with explicit dimensions. Inputs are never modified; only
// dst changes; dst must not alias an input. Dimension mismatches are programmer errors and
// panic (inputs here never come from files or the network).
//
// The backend is chosen once at start-up: on amd64 with AVX2 and FMA, the assembly kernel of
// github.com/viterin/vek with rows split across the cores; elsewhere gonum's pure-Go BLAS.
// Both are tested against the naive triple loop in this package's tests. Swapping in a faster
// kernel (e.g. OpenBLAS through gonum/netlib, or a float32 path) means changing this package
// only.
package linalg
