//go:build amd64 && !purego

#include "textflag.h"

// reduceMax leaves in AX the largest of the eight unsigned lanes of Z0 (clobbers Z1).
#define REDUCE_MAX \
	VSHUFI64X2 $0x4E, Z0, Z0, Z1; \
	VPMAXUQ    Z1, Z0, Z0;        \
	VSHUFI64X2 $0xB1, Z0, Z0, Z1; \
	VPMAXUQ    Z1, Z0, Z0;        \
	VPSHUFD    $0x4E, Z0, Z1;     \
	VPMAXUQ    Z1, Z0, Z0;        \
	VMOVQ      X0, AX

// func maxCoeffsVec(p *byte, n int) uint64
TEXT ·maxCoeffsVec(SB), NOSPLIT, $0-24
	MOVQ   p+0(FP), SI
	MOVQ   n+8(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4

maxloop:
	VPMAXUQ (SI), Z0, Z0
	VPMAXUQ 64(SI), Z2, Z2
	VPMAXUQ 128(SI), Z3, Z3
	VPMAXUQ 192(SI), Z4, Z4
	ADDQ    $256, SI
	SUBQ    $32, CX
	JNZ     maxloop

	VPMAXUQ Z2, Z0, Z0
	VPMAXUQ Z4, Z3, Z3
	VPMAXUQ Z3, Z0, Z0
	REDUCE_MAX
	VZEROUPPER
	MOVQ    AX, ret+16(FP)
	RET

// func checkAddCoeffsVec(dst *uint64, src *byte, n int, q uint64) int
//
// Group after group of 32 lanes: the group is loaded, its largest lane compared with q, and
// only if every lane is below q added to dst: s = dst + src, t = s − q, dst = min(s, t)
// unsigned (s − q wraps above s when s < q, so this is addMod; each src byte is read
// once, into the registers that are both checked and added). Stops before the first group
// with a lane not below q; returns the lanes added.
TEXT ·checkAddCoeffsVec(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VPBROADCASTQ q+24(FP), Z31
	XORQ         AX, AX

checkaddloop:
	VMOVDQU64 (SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VPMAXUQ   Z1, Z0, Z4
	VPMAXUQ   Z3, Z2, Z5
	VPMAXUQ   Z5, Z4, Z4
	VPCMPUQ   $5, Z31, Z4, K1 // K1: lanes of Z4 not below q
	KMOVW     K1, DX
	TESTL     DX, DX
	JNZ       checkadddone
	VPADDQ    (DI), Z0, Z0
	VPADDQ    64(DI), Z1, Z1
	VPADDQ    128(DI), Z2, Z2
	VPADDQ    192(DI), Z3, Z3
	VPSUBQ    Z31, Z0, Z4
	VPSUBQ    Z31, Z1, Z5
	VPSUBQ    Z31, Z2, Z6
	VPSUBQ    Z31, Z3, Z7
	VPMINUQ   Z4, Z0, Z0
	VPMINUQ   Z5, Z1, Z1
	VPMINUQ   Z6, Z2, Z2
	VPMINUQ   Z7, Z3, Z3
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	ADDQ      $256, SI
	ADDQ      $256, DI
	ADDQ      $32, AX
	CMPQ      AX, CX
	JLT       checkaddloop

checkadddone:
	VZEROUPPER
	MOVQ AX, ret+32(FP)
	RET
