// Package linalg holds the few dense kernels all of Confide's layer math goes through:
// matrix multiply in its three transpose forms (MulNN, MulNT, MulTN) with overwrite or
// accumulate semantics, a right operand packed once for many products (PackedB), a blocked
// transpose, vector helpers, the elementwise Exp, Sigmoid and Tanh, the int8 product of
// quantised inference (QuantizeRows, QuantizeChannels, MulQ), and ParallelFor, which
// spreads work over the cores through the same long-lived helper goroutines the multiplies
// use.
//
// Matrices are row-major []float64 with explicit dimensions. Inputs are never modified; only
// dst changes; dst must not alias an input (the elementwise functions allow dst == src).
// Dimension mismatches are programmer errors and panic (inputs here never come from files
// or the network). All functions are safe for concurrent use on disjoint destinations.
//
// The backend is chosen once at start-up: on amd64 with AVX2 and FMA, a cache-blocked
// multiply around a 6×8 register-blocked assembly micro-kernel (gemm_amd64.go) and vector
// exp/sigmoid/tanh (elementwise_amd64.s), and int8 dot-product tiles with AVX-512 VNNI or
// AVX2 (int8_amd64.s); elsewhere, or with the purego build tag, gonum's
// pure-Go BLAS and the math package. Products of at most a few hundred multiply-adds use a
// plain loop on either. Each is tested against a simple reference (the naive triple loop,
// the math package). Results differ between backends only by rounding; on one backend they
// do not depend on Workers: a multiply is split into whole tiles of C, never into parts of
// one sum.
package linalg
