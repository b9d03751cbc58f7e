//go:build amd64 && !purego

#include "textflag.h"

// MADD adds the pairwise products of the 16 int16 values at mem and in Y12 to acc.
#define MADD(mem, acc) \
	VPMADDWD mem, Y12, Y13; \
	VPADDD   Y13, acc, acc

// HSUM stores the sum of acc's 8 int32 lanes at off(DX).
#define HSUM(acc, xacc, off) \
	VEXTRACTI128 $1, acc, X13;  \
	VPADDD       X13, xacc, xacc; \
	VPSHUFD      $0x4E, xacc, X13; \
	VPADDD       X13, xacc, xacc; \
	VPSHUFD      $0xB1, xacc, X13; \
	VPADDD       X13, xacc, xacc; \
	VMOVD        xacc, off(DX)

// func dot3x4AVX2(x, w *int16, k int, out *int32)
// x rows at SI, SI+R8, SI+2·R8; w rows at DI, DI+R8, DI+2·R8, DI+3·R8 (R8 = 2k bytes).
TEXT ·dot3x4AVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $1, R8
	LEAQ (SI)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	LEAQ (DI)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	LEAQ (R13)(R8*1), R14
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11
	XORQ AX, AX

loop3:
	VMOVDQU (DI)(AX*1), Y12
	MADD((SI)(AX*1), Y0)
	MADD((R10)(AX*1), Y4)
	MADD((R11)(AX*1), Y8)
	VMOVDQU (R12)(AX*1), Y12
	MADD((SI)(AX*1), Y1)
	MADD((R10)(AX*1), Y5)
	MADD((R11)(AX*1), Y9)
	VMOVDQU (R13)(AX*1), Y12
	MADD((SI)(AX*1), Y2)
	MADD((R10)(AX*1), Y6)
	MADD((R11)(AX*1), Y10)
	VMOVDQU (R14)(AX*1), Y12
	MADD((SI)(AX*1), Y3)
	MADD((R10)(AX*1), Y7)
	MADD((R11)(AX*1), Y11)
	ADDQ $32, AX
	SUBQ $16, CX
	JNZ  loop3

	HSUM(Y0, X0, 0)
	HSUM(Y1, X1, 4)
	HSUM(Y2, X2, 8)
	HSUM(Y3, X3, 12)
	HSUM(Y4, X4, 16)
	HSUM(Y5, X5, 20)
	HSUM(Y6, X6, 24)
	HSUM(Y7, X7, 28)
	HSUM(Y8, X8, 32)
	HSUM(Y9, X9, 36)
	HSUM(Y10, X10, 40)
	HSUM(Y11, X11, 44)
	VZEROUPPER
	RET

// func dot1x4AVX2(x, w *int16, k int, out *int32)
TEXT ·dot1x4AVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $1, R8
	LEAQ (DI)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	LEAQ (R13)(R8*1), R14
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	XORQ AX, AX

loop1:
	VMOVDQU (SI)(AX*1), Y12
	MADD((DI)(AX*1), Y0)
	MADD((R12)(AX*1), Y1)
	MADD((R13)(AX*1), Y2)
	MADD((R14)(AX*1), Y3)
	ADDQ $32, AX
	SUBQ $16, CX
	JNZ  loop1

	HSUM(Y0, X0, 0)
	HSUM(Y1, X1, 4)
	HSUM(Y2, X2, 8)
	HSUM(Y3, X3, 12)
	VZEROUPPER
	RET

// ZSUM stores the sum of the 16 int32 lanes of zacc (yacc, xacc its lower halves) at off(DX).
#define ZSUM(zacc, yacc, xacc, off) \
	VEXTRACTI64X4 $1, zacc, Y13; \
	VPADDD        Y13, yacc, yacc; \
	HSUM(yacc, xacc, off)

// func dot3x4VNNI(x, w *int16, k int, out *int32)
// x rows at SI, R10, R11 (in Z12–Z14); w rows at DI, R12, R13, R14 (each in turn in Z15);
// accumulator of (x row r, w row c) in Z(4r + c).
TEXT ·dot3x4VNNI(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $1, R8
	LEAQ (SI)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	LEAQ (DI)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	LEAQ (R13)(R8*1), R14
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	XORQ AX, AX

loopv3:
	VMOVDQU64 (SI)(AX*1), Z12
	VMOVDQU64 (R10)(AX*1), Z13
	VMOVDQU64 (R11)(AX*1), Z14
	VMOVDQU64 (DI)(AX*1), Z15
	VPDPWSSD  Z15, Z12, Z0
	VPDPWSSD  Z15, Z13, Z4
	VPDPWSSD  Z15, Z14, Z8
	VMOVDQU64 (R12)(AX*1), Z15
	VPDPWSSD  Z15, Z12, Z1
	VPDPWSSD  Z15, Z13, Z5
	VPDPWSSD  Z15, Z14, Z9
	VMOVDQU64 (R13)(AX*1), Z15
	VPDPWSSD  Z15, Z12, Z2
	VPDPWSSD  Z15, Z13, Z6
	VPDPWSSD  Z15, Z14, Z10
	VMOVDQU64 (R14)(AX*1), Z15
	VPDPWSSD  Z15, Z12, Z3
	VPDPWSSD  Z15, Z13, Z7
	VPDPWSSD  Z15, Z14, Z11
	ADDQ $64, AX
	SUBQ $32, CX
	JNZ  loopv3

	ZSUM(Z0, Y0, X0, 0)
	ZSUM(Z1, Y1, X1, 4)
	ZSUM(Z2, Y2, X2, 8)
	ZSUM(Z3, Y3, X3, 12)
	ZSUM(Z4, Y4, X4, 16)
	ZSUM(Z5, Y5, X5, 20)
	ZSUM(Z6, Y6, X6, 24)
	ZSUM(Z7, Y7, X7, 28)
	ZSUM(Z8, Y8, X8, 32)
	ZSUM(Z9, Y9, X9, 36)
	ZSUM(Z10, Y10, X10, 40)
	ZSUM(Z11, Y11, X11, 44)
	VZEROUPPER
	RET

// func dot1x4VNNI(x, w *int16, k int, out *int32)
TEXT ·dot1x4VNNI(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $1, R8
	LEAQ (DI)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	LEAQ (R13)(R8*1), R14
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	XORQ AX, AX

loopv1:
	VMOVDQU64 (SI)(AX*1), Z12
	VPDPWSSD  (DI)(AX*1), Z12, Z0
	VPDPWSSD  (R12)(AX*1), Z12, Z1
	VPDPWSSD  (R13)(AX*1), Z12, Z2
	VPDPWSSD  (R14)(AX*1), Z12, Z3
	ADDQ $64, AX
	SUBQ $32, CX
	JNZ  loopv1

	ZSUM(Z0, Y0, X0, 0)
	ZSUM(Z1, Y1, X1, 4)
	ZSUM(Z2, Y2, X2, 8)
	ZSUM(Z3, Y3, X3, 12)
	VZEROUPPER
	RET
