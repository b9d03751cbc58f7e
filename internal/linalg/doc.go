// Package linalg holds the few dense kernels all of Confide's layer math goes through:
// matrix multiply in its three transpose forms (MulNN, MulNT, MulTN) with overwrite or
// accumulate semantics, a right operand packed once for many products (PackedB), a blocked
// transpose, vector helpers, the elementwise Exp, Sigmoid and Tanh, the float32 training
// step's streaming kernels (Narrow and Drain between float64 master weights and float32
// copies, Descend for plain SGD, DescendNarrow, which also rounds the updated weights
// into the float32 copy, and DescendDrain, which also takes the float32 gradients, ReLU32
// and ReLUGrad32, MaxArg32 for max pooling; each
// bit-identical to its scalar loop, which is the fallback), the int8 product of
// quantised inference (QuantizeRows, QuantizeChannels, MulQ), and ParallelFor, which
// spreads work over the cores through the same long-lived helper goroutines the multiplies
// use. A helper that finishes a job polls for the next one for up to 500 µs before it
// blocks, and a caller polls for its helpers' last chunks as long, as OpenMP's threads do:
// a blocked helper wakes too late for most multiplies of a training step, which the caller
// then runs alone (the float32 MLP step ran slower on two threads than on one; a region of
// two 131,072-multiply-add chunks takes 30 µs with helpers that block, 26.6 µs on one
// worker, 12.8 µs with polling helpers: BenchmarkParallelForHandoff).
//
// Matrices are row-major []T with explicit dimensions, T a Float: float64, or float32 for
// training at twice the multiply-add rate. Inputs are never modified; only dst changes; dst
// must not alias an input (the elementwise functions allow dst == src). Dimension mismatches
// are programmer errors and panic (inputs here never come from files or the network). All
// functions are safe for concurrent use on disjoint destinations.
//
// The backend is chosen once at start-up, for each type: on amd64 with AVX2 and FMA, a
// cache-blocked multiply (gemm_amd64.go, one driver generic over T) around a register-
// blocked assembly micro-kernel, 6×8 for float64 and 6×16 for float32 (kernel_amd64.s: the
// same twelve ymm accumulators, holding 4 or 8 values each; half-width ones for the last
// columns of C; where the CPU has AVX-512, tiles twice as wide in zmm registers, 6×16 and
// 6×32, with the same sums in the same order: BenchmarkGemm's fast and ymm backends), vector exp/sigmoid/tanh with 4 float64 or 8 float32 lanes
// (elementwise_amd64.s), and int8 dot-product tiles with AVX-512 VNNI or AVX2
// (int8_amd64.s), and the streaming kernels with AVX2 (convert_amd64.s, descend_amd64.s,
// relu_amd64.s, maxarg_amd64.s); elsewhere, or with the purego build tag, gonum's pure-Go BLAS (blas64,
// blas32) and the math package (float32 values through the float64 functions, rounded
// once). Dot, Add and Sum use vek's AVX2 routines for both types where the CPU has them.
// Products of at most a few hundred multiply-adds use a plain loop on either backend. Each
// is tested against a simple reference: the naive triple loop in float64 (float32 products
// within the rounding bound k·ε·Σ|a_ip·b_pj|), the math package (float32 results within 3
// ulps of the float64 result rounded). Results differ between backends only by rounding; on
// one backend they do not depend on Workers: a multiply is split into whole tiles of C,
// never into parts of one sum; nor does an elementwise result depend on the value's
// position in the slice.
package linalg
