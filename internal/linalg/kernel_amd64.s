//go:build amd64 && !purego

#include "textflag.h"

// The micro-kernels of gemm_amd64.go, one macro body for both element types and both
// widths: a row of a tile is two ymm registers (8 float64 or 16 float32, 64 bytes either
// way), or one in the half-width kernels for the last columns of C, so the kernels differ
// only in the scale of the strides (SHIFT: log2 of the element size), in the k step and
// stores (STEP, STORE: full or half width), and in the broadcast, fused multiply-add and
// add instructions (BCAST, FMA, ADDROW). Loads and stores are VMOVUPS for both types: a
// move does not look at the lanes.

// One k step: B row (two ymm at DI) times A's six values of one depth index, at SI,
// SI+R10, SI+2·R10 (rows 0–2) and R11, R11+R10, R11+2·R10 (rows 3–5); both bases then
// advance by R12.
#define STEP(BCAST, FMA) \
	VMOVUPS (DI), Y0;          \
	VMOVUPS 32(DI), Y1;        \
	ADDQ    R9, DI;            \
	BCAST   (SI), Y2;          \
	BCAST   (SI)(R10*1), Y3;   \
	FMA     Y0, Y2, Y4;        \
	FMA     Y1, Y2, Y5;        \
	FMA     Y0, Y3, Y6;        \
	FMA     Y1, Y3, Y7;        \
	BCAST   (SI)(R10*2), Y2;   \
	BCAST   (R11), Y3;         \
	FMA     Y0, Y2, Y8;        \
	FMA     Y1, Y2, Y9;        \
	FMA     Y0, Y3, Y10;       \
	FMA     Y1, Y3, Y11;       \
	BCAST   (R11)(R10*1), Y2;  \
	BCAST   (R11)(R10*2), Y3;  \
	FMA     Y0, Y2, Y12;       \
	FMA     Y1, Y2, Y13;       \
	FMA     Y0, Y3, Y14;       \
	FMA     Y1, Y3, Y15;       \
	ADDQ    R12, SI;           \
	ADDQ    R12, R11

// A k step of a half-width kernel: one ymm of B times the six values of A into Y4–Y9. With
// six accumulators, FMA latency (4 cycles) holds it to three quarters of the peak rate,
// still more than a full tile of which half is discarded.
#define STEPHALF(BCAST, FMA) \
	VMOVUPS (DI), Y0;          \
	ADDQ    R9, DI;            \
	BCAST   (SI), Y1;          \
	BCAST   (SI)(R10*1), Y2;   \
	BCAST   (SI)(R10*2), Y3;   \
	FMA     Y0, Y1, Y4;        \
	FMA     Y0, Y2, Y5;        \
	FMA     Y0, Y3, Y6;        \
	BCAST   (R11), Y1;         \
	BCAST   (R11)(R10*1), Y2;  \
	BCAST   (R11)(R10*2), Y3;  \
	FMA     Y0, Y1, Y7;        \
	FMA     Y0, Y2, Y8;        \
	FMA     Y0, Y3, Y9;        \
	ADDQ    R12, SI;           \
	ADDQ    R12, R11

// The stores of one row of C at DX from its two accumulators: adding to C, or overwriting.
#define ADDROW64(LO, HI) VADDPD (DX), LO, LO; VADDPD 32(DX), HI, HI; SETROW(LO, HI)
#define ADDROW32(LO, HI) VADDPS (DX), LO, LO; VADDPS 32(DX), HI, HI; SETROW(LO, HI)
#define SETROW(LO, HI) VMOVUPS LO, (DX); VMOVUPS HI, 32(DX)

#define STOREROWS(ROW) \
	ROW(Y4, Y5);   \
	ADDQ R8, DX;   \
	ROW(Y6, Y7);   \
	ADDQ R8, DX;   \
	ROW(Y8, Y9);   \
	ADDQ R8, DX;   \
	ROW(Y10, Y11); \
	ADDQ R8, DX;   \
	ROW(Y12, Y13); \
	ADDQ R8, DX;   \
	ROW(Y14, Y15)

#define ADDHALF64(R) VADDPD (DX), R, R; SETHALF(R)
#define ADDHALF32(R) VADDPS (DX), R, R; SETHALF(R)
#define SETHALF(R) VMOVUPS R, (DX)

#define STOREHALVES(ROW) \
	ROW(Y4); ADDQ R8, DX; ROW(Y5); ADDQ R8, DX; ROW(Y6); ADDQ R8, DX; \
	ROW(Y7); ADDQ R8, DX; ROW(Y8); ADDQ R8, DX; ROW(Y9)

#define PREFETCHROW PREFETCHT0 (AX); PREFETCHT0 32(AX); ADDQ R8, AX

#define ZEROY \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7; \
	VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9; VXORPS Y10, Y10, Y10; VXORPS Y11, Y11, Y11; \
	VXORPS Y12, Y12, Y12; VXORPS Y13, Y13, Y13; VXORPS Y14, Y14, Y14; VXORPS Y15, Y15, Y15

#define KERNEL(SHIFT, STEP, BCAST, FMA, STORE, ADDROW, SETROW, ZERO, PREFETCH) \
	MOVQ kc+0(FP), CX;              \
	MOVQ a+8(FP), SI;               \
	MOVQ rsA+16(FP), R10;           \
	SHLQ $SHIFT, R10;               \
	MOVQ csA+24(FP), R12;           \
	SHLQ $SHIFT, R12;               \
	LEAQ (SI)(R10*2), R11;          \
	ADDQ R10, R11;                  \
	MOVQ b+32(FP), DI;              \
	MOVQ ldb+40(FP), R9;            \
	SHLQ $SHIFT, R9;                \
	MOVQ c+48(FP), DX;              \
	MOVQ ldc+56(FP), R8;            \
	SHLQ $SHIFT, R8;                \
	/* Touch the six rows of C early so their lines arrive while the loop runs. */ \
	MOVQ DX, AX;                    \
	PREFETCH; PREFETCH; PREFETCH; PREFETCH; PREFETCH; PREFETCH; \
	ZERO;                           \
	MOVQ  CX, BX;                   \
	SHRQ  $2, BX;                   \
	ANDQ  $3, CX;                   \
	TESTQ BX, BX;                   \
	JEQ   tail;                     \
loop4:                              \
	STEP(BCAST, FMA);               \
	STEP(BCAST, FMA);               \
	STEP(BCAST, FMA);               \
	STEP(BCAST, FMA);               \
	DECQ BX;                        \
	JNE  loop4;                     \
tail:                               \
	TESTQ CX, CX;                   \
	JEQ   store;                    \
loop1:                              \
	STEP(BCAST, FMA);               \
	DECQ CX;                        \
	JNE  loop1;                     \
store:                              \
	MOVBQZX acc+64(FP), AX;         \
	TESTQ   AX, AX;                 \
	JEQ     overwrite;              \
	STORE(ADDROW);                  \
	VZEROUPPER;                     \
	RET;                            \
overwrite:                          \
	STORE(SETROW);                  \
	VZEROUPPER;                     \
	RET

// func kernel6x8(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)
TEXT ·kernel6x8(SB), NOSPLIT, $0-65
	KERNEL(3, STEP, VBROADCASTSD, VFMADD231PD, STOREROWS, ADDROW64, SETROW, ZEROY, PREFETCHROW)

// func kernel6x16(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)
TEXT ·kernel6x16(SB), NOSPLIT, $0-65
	KERNEL(2, STEP, VBROADCASTSS, VFMADD231PS, STOREROWS, ADDROW32, SETROW, ZEROY, PREFETCHROW)

// func kernel6x4(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)
TEXT ·kernel6x4(SB), NOSPLIT, $0-65
	KERNEL(3, STEPHALF, VBROADCASTSD, VFMADD231PD, STOREHALVES, ADDHALF64, SETHALF, ZEROY, PREFETCHROW)

// func kernel6x8f32(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)
TEXT ·kernel6x8f32(SB), NOSPLIT, $0-65
	KERNEL(2, STEPHALF, VBROADCASTSS, VFMADD231PS, STOREHALVES, ADDHALF32, SETHALF, ZEROY, PREFETCHROW)

// The AVX-512 kernels (gemm_amd64.go: wide): the same tiles with zmm registers, a row of a
// tile two zmm (16 float64 or 32 float32, 128 bytes) or one in the half-width kernels. Each
// element of C is the same chain of fused multiply-adds over the depth as in the ymm
// kernels, so the two families give bit-identical results.
#define STEP512(BCAST, FMA) \
	VMOVUPS (DI), Z0;          \
	VMOVUPS 64(DI), Z1;        \
	ADDQ    R9, DI;            \
	BCAST   (SI), Z2;          \
	BCAST   (SI)(R10*1), Z3;   \
	FMA     Z0, Z2, Z4;        \
	FMA     Z1, Z2, Z5;        \
	FMA     Z0, Z3, Z6;        \
	FMA     Z1, Z3, Z7;        \
	BCAST   (SI)(R10*2), Z2;   \
	BCAST   (R11), Z3;         \
	FMA     Z0, Z2, Z8;        \
	FMA     Z1, Z2, Z9;        \
	FMA     Z0, Z3, Z10;       \
	FMA     Z1, Z3, Z11;       \
	BCAST   (R11)(R10*1), Z2;  \
	BCAST   (R11)(R10*2), Z3;  \
	FMA     Z0, Z2, Z12;       \
	FMA     Z1, Z2, Z13;       \
	FMA     Z0, Z3, Z14;       \
	FMA     Z1, Z3, Z15;       \
	ADDQ    R12, SI;           \
	ADDQ    R12, R11

#define STEPHALF512(BCAST, FMA) \
	VMOVUPS (DI), Z0;          \
	ADDQ    R9, DI;            \
	BCAST   (SI), Z1;          \
	BCAST   (SI)(R10*1), Z2;   \
	BCAST   (SI)(R10*2), Z3;   \
	FMA     Z0, Z1, Z4;        \
	FMA     Z0, Z2, Z5;        \
	FMA     Z0, Z3, Z6;        \
	BCAST   (R11), Z1;         \
	BCAST   (R11)(R10*1), Z2;  \
	BCAST   (R11)(R10*2), Z3;  \
	FMA     Z0, Z1, Z7;        \
	FMA     Z0, Z2, Z8;        \
	FMA     Z0, Z3, Z9;        \
	ADDQ    R12, SI;           \
	ADDQ    R12, R11

#define ADDROW64Z(LO, HI) VADDPD (DX), LO, LO; VADDPD 64(DX), HI, HI; SETROWZ(LO, HI)
#define ADDROW32Z(LO, HI) VADDPS (DX), LO, LO; VADDPS 64(DX), HI, HI; SETROWZ(LO, HI)
#define SETROWZ(LO, HI) VMOVUPS LO, (DX); VMOVUPS HI, 64(DX)

#define STOREROWSZ(ROW) \
	ROW(Z4, Z5);   \
	ADDQ R8, DX;   \
	ROW(Z6, Z7);   \
	ADDQ R8, DX;   \
	ROW(Z8, Z9);   \
	ADDQ R8, DX;   \
	ROW(Z10, Z11); \
	ADDQ R8, DX;   \
	ROW(Z12, Z13); \
	ADDQ R8, DX;   \
	ROW(Z14, Z15)

#define ADDHALF64Z(R) VADDPD (DX), R, R; SETHALFZ(R)
#define ADDHALF32Z(R) VADDPS (DX), R, R; SETHALFZ(R)
#define SETHALFZ(R) VMOVUPS R, (DX)

#define STOREHALVESZ(ROW) \
	ROW(Z4); ADDQ R8, DX; ROW(Z5); ADDQ R8, DX; ROW(Z6); ADDQ R8, DX; \
	ROW(Z7); ADDQ R8, DX; ROW(Z8); ADDQ R8, DX; ROW(Z9)

#define PREFETCHROWZ PREFETCHT0 (AX); PREFETCHT0 64(AX); PREFETCHT0 127(AX); ADDQ R8, AX

#define ZEROZ \
	VPXORD Z4, Z4, Z4; VPXORD Z5, Z5, Z5; VPXORD Z6, Z6, Z6; VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; VPXORD Z9, Z9, Z9; VPXORD Z10, Z10, Z10; VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; VPXORD Z13, Z13, Z13; VPXORD Z14, Z14, Z14; VPXORD Z15, Z15, Z15

// func kernel6x16z(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)
TEXT ·kernel6x16z(SB), NOSPLIT, $0-65
	KERNEL(3, STEP512, VBROADCASTSD, VFMADD231PD, STOREROWSZ, ADDROW64Z, SETROWZ, ZEROZ, PREFETCHROWZ)

// func kernel6x32z(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)
TEXT ·kernel6x32z(SB), NOSPLIT, $0-65
	KERNEL(2, STEP512, VBROADCASTSS, VFMADD231PS, STOREROWSZ, ADDROW32Z, SETROWZ, ZEROZ, PREFETCHROWZ)

// func kernel6x8z(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)
TEXT ·kernel6x8z(SB), NOSPLIT, $0-65
	KERNEL(3, STEPHALF512, VBROADCASTSD, VFMADD231PD, STOREHALVESZ, ADDHALF64Z, SETHALFZ, ZEROZ, PREFETCHROWZ)

// func kernel6x16f32z(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)
TEXT ·kernel6x16f32z(SB), NOSPLIT, $0-65
	KERNEL(2, STEPHALF512, VBROADCASTSS, VFMADD231PS, STOREHALVESZ, ADDHALF32Z, SETHALFZ, ZEROZ, PREFETCHROWZ)
