//go:build amd64 && !purego

#include "textflag.h"

// func zigGroupsAVX2(dst *float64, buf *uint64, n int, std float64, refused *uint32) int
//
// Per group: Y0 = the eight j (int32), Y1 = their layers, Y3 = zigK[layer], Y4 = zigW[layer]
// (float32 bits), by gathers. A lane is on the fast path when |j| < K as unsigned numbers
// (VPABSD of MinInt32 is 2^31, as zigAbs's is, and every K is below it), so Y6 marks the
// lanes where max(|j|, K) = |j|. Each lane's sum dst + std·(float64(j)·float64(W)) is
// rounded in float64 as the Go code rounds it, and the marked lanes keep their old value.
// Every group writes its entry g<<8 | marks at refused[R11]; R11 moves on only when a lane
// is marked, so there is no branch on the marks.
TEXT ·zigGroupsAVX2(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         buf+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSD std+24(FP), Y14
	MOVQ         refused+32(FP), R10
	MOVL         $0x7F, AX
	MOVQ         AX, X15
	VPBROADCASTD X15, Y15
	LEAQ         ·zigK(SB), R8
	LEAQ         ·zigW(SB), R9
	XORQ         AX, AX
	XORQ         R11, R11

loop:
	CMPQ       AX, CX
	JGE        done
	VMOVDQU    (SI), Y0
	VPMOVZXBD  32(SI), Y1
	VPAND      Y15, Y1, Y1
	VPCMPEQD   Y2, Y2, Y2
	VPGATHERDD Y2, (R8)(Y1*4), Y3
	VPCMPEQD   Y2, Y2, Y2
	VPGATHERDD Y2, (R9)(Y1*4), Y4
	VPABSD     Y0, Y5
	VPMAXUD    Y3, Y5, Y6
	VPCMPEQD   Y5, Y6, Y6

	VMOVUPD      (DI), Y12
	VMOVUPD      32(DI), Y13
	VCVTDQ2PD    X0, Y7
	VCVTPS2PD    X4, Y8
	VMULPD       Y8, Y7, Y7
	VMULPD       Y14, Y7, Y7
	VADDPD       Y12, Y7, Y7
	VEXTRACTI128 $1, Y0, X9
	VEXTRACTF128 $1, Y4, X10
	VCVTDQ2PD    X9, Y9
	VCVTPS2PD    X10, Y10
	VMULPD       Y10, Y9, Y9
	VMULPD       Y14, Y9, Y9
	VADDPD       Y13, Y9, Y9

	VPMOVSXDQ    X6, Y11
	VEXTRACTI128 $1, Y6, X10
	VPMOVSXDQ    X10, Y10
	VBLENDVPD    Y11, Y12, Y7, Y7
	VBLENDVPD    Y10, Y13, Y9, Y9
	VMOVUPD      Y7, (DI)
	VMOVUPD      Y9, 32(DI)

	VMOVMSKPS Y6, BX
	MOVL      AX, DX
	SHLL      $8, DX
	ORL       BX, DX
	MOVL      DX, (R10)(R11*4)
	NEGL      BX               // CF = a lane is marked
	ADCQ      $0, R11

	ADDQ $64, DI
	ADDQ $40, SI
	INCQ AX
	JMP  loop

done:
	MOVQ R11, ret+40(FP)
	VZEROUPPER
	RET

// func zigGroupsAVX512(dst *float64, buf *uint64, pairs int, std float64, refused *uint32) int
//
// zigGroupsAVX2 two groups (sixteen lanes) at a time, with the tables in registers instead
// of gathers: Z16–Z23 hold zigK and Z24–Z31 zigW, 32 entries a register pair; VPERMI2D
// looks a lane's layer up in each pair (its low five bits) and two blends pick the pair by
// bits 5 and 6. K1 marks the lanes on the fast path (|j| < K unsigned); they alone are
// stored (masked stores), so the others keep their value. The two groups' entries are
// written as zigGroupsAVX2 writes them, group 2·pair then 2·pair+1.
TEXT ·zigGroupsAVX512(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         buf+8(FP), SI
	MOVQ         pairs+16(FP), CX
	VBROADCASTSD std+24(FP), Z14
	MOVQ         refused+32(FP), R10
	MOVL         $0x7F, AX
	VPBROADCASTD AX, Z15
	MOVL         $32, AX
	VPBROADCASTD AX, Z13
	MOVL         $64, AX
	VPBROADCASTD AX, Z12
	LEAQ         ·zigK(SB), R8
	VMOVDQU32    (R8), Z16
	VMOVDQU32    64(R8), Z17
	VMOVDQU32    128(R8), Z18
	VMOVDQU32    192(R8), Z19
	VMOVDQU32    256(R8), Z20
	VMOVDQU32    320(R8), Z21
	VMOVDQU32    384(R8), Z22
	VMOVDQU32    448(R8), Z23
	LEAQ         ·zigW(SB), R9
	VMOVDQU32    (R9), Z24
	VMOVDQU32    64(R9), Z25
	VMOVDQU32    128(R9), Z26
	VMOVDQU32    192(R9), Z27
	VMOVDQU32    256(R9), Z28
	VMOVDQU32    320(R9), Z29
	VMOVDQU32    384(R9), Z30
	VMOVDQU32    448(R9), Z31
	XORQ         AX, AX
	XORQ         R11, R11

pairloop:
	CMPQ         AX, CX
	JGE          pairdone
	VMOVDQU      (SI), Y0           // AVX: VMOVDQU32 on a ymm register would need AVX512VL
	VINSERTI64X4 $1, 40(SI), Z0, Z0 // the sixteen j
	VMOVQ        32(SI), X1
	VPINSRQ      $1, 72(SI), X1, X1
	VPMOVZXBD    X1, Z1
	VPANDD       Z15, Z1, Z1        // the sixteen layers
	VPTESTMD     Z13, Z1, K2        // bit 5
	VPTESTMD     Z12, Z1, K3        // bit 6

	VMOVDQA64 Z1, Z3
	VPERMI2D  Z17, Z16, Z3
	VMOVDQA64 Z1, Z4
	VPERMI2D  Z19, Z18, Z4
	VMOVDQA64 Z1, Z5
	VPERMI2D  Z21, Z20, Z5
	VMOVDQA64 Z1, Z6
	VPERMI2D  Z23, Z22, Z6
	VPBLENDMD Z4, Z3, K2, Z3
	VPBLENDMD Z6, Z5, K2, Z5
	VPBLENDMD Z5, Z3, K3, Z3 // K

	VMOVDQA64 Z1, Z7
	VPERMI2D  Z25, Z24, Z7
	VMOVDQA64 Z1, Z4
	VPERMI2D  Z27, Z26, Z4
	VMOVDQA64 Z1, Z5
	VPERMI2D  Z29, Z28, Z5
	VMOVDQA64 Z1, Z6
	VPERMI2D  Z31, Z30, Z6
	VPBLENDMD Z4, Z7, K2, Z7
	VPBLENDMD Z6, Z5, K2, Z5
	VPBLENDMD Z5, Z7, K3, Z7 // W (float32 bits)

	VPABSD  Z0, Z2
	VPCMPUD $1, Z3, Z2, K1 // |j| < K

	VCVTDQ2PD     Y0, Z8
	VEXTRACTI64X4 $1, Z0, Y9
	VCVTDQ2PD     Y9, Z9
	VCVTPS2PD     Y7, Z10
	VEXTRACTF64X4 $1, Z7, Y11
	VCVTPS2PD     Y11, Z11
	VMULPD        Z10, Z8, Z8
	VMULPD        Z14, Z8, Z8
	VADDPD        (DI), Z8, Z8
	VMULPD        Z11, Z9, Z9
	VMULPD        Z14, Z9, Z9
	VADDPD        64(DI), Z9, Z9
	KSHIFTRW      $8, K1, K4
	VMOVUPD       Z8, K1, (DI)
	VMOVUPD       Z9, K4, 64(DI)

	KMOVW K1, BX
	NOTL  BX
	MOVL  AX, DX
	SHLL  $9, DX   // group 2·pair, shifted by 8
	MOVL  BX, R12
	ANDL  $0xFF, R12
	ORL   R12, DX
	MOVL  DX, (R10)(R11*4)
	NEGL  R12              // CF = a lane is marked
	ADCQ  $0, R11
	ADDL  $0x100, DX       // group 2·pair+1
	ANDL  $0xFFFFFF00, DX
	SHRL  $8, BX
	ANDL  $0xFF, BX
	ORL   BX, DX
	MOVL  DX, (R10)(R11*4)
	NEGL  BX
	ADCQ  $0, R11

	ADDQ $128, DI
	ADDQ $80, SI
	INCQ AX
	JMP  pairloop

pairdone:
	MOVQ R11, ret+40(FP)
	VZEROUPPER
	RET
