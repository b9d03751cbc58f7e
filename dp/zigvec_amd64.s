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
