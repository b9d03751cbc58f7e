//go:build amd64 && !purego

#include "textflag.h"

// DESCEND8(G0, G1) updates the eight values at DI from the gradients G0 and G1 (memory
// operands or registers), lr in Y14 and wd in Y15, leaving them in Y0 and Y1.
#define DESCEND8(G0, G1) \
	VMOVUPD (DI), Y0;     \
	VMOVUPD 32(DI), Y1;   \
	VMULPD  Y15, Y0, Y2;  \
	VMULPD  Y15, Y1, Y3;  \
	VADDPD  G0, Y2, Y2;   \
	VADDPD  G1, Y3, Y3;   \
	VMULPD  Y14, Y2, Y2;  \
	VMULPD  Y14, Y3, Y3;  \
	VSUBPD  Y2, Y0, Y0;   \
	VSUBPD  Y3, Y1, Y1;   \
	VMOVUPD Y0, (DI);     \
	VMOVUPD Y1, 32(DI)

// NARROW8 stores DESCEND8's results rounded to float32 at DX.
#define NARROW8 \
	VCVTPD2PSY Y0, X4; \
	VCVTPD2PSY Y1, X5; \
	VMOVUPS    X4, (DX); \
	VMOVUPS    X5, 16(DX)

// WIDEN8 loads the eight float32 gradients at R8 into Y6 and Y7 as float64, plus +0 (Y13)
// as Drain's sum in a cleared vector forms them (−0 becomes +0).
#define WIDEN8 \
	VCVTPS2PD (R8), Y6;   \
	VCVTPS2PD 16(R8), Y7; \
	VADDPD    Y6, Y13, Y6; \
	VADDPD    Y7, Y13, Y7

// func descendAVX(p, grad *float64, n int, lr, wd float64)
//
// p −= lr·(g + wd·p), eight values an iteration, each operation rounded separately as
// Descend's scalar loop rounds it.
TEXT ·descendAVX(SB), NOSPLIT, $0-40
	MOVQ         p+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSD lr+24(FP), Y14
	VBROADCASTSD wd+32(FP), Y15
	SHRQ         $3, CX
	JZ           descendDone

descendLoop:
	DESCEND8((SI), 32(SI))
	ADDQ $64, DI
	ADDQ $64, SI
	DECQ CX
	JNZ  descendLoop

descendDone:
	VZEROUPPER
	RET

// func descendNarrowAVX(p, grad *float64, low *float32, n int, lr, wd float64)
//
// descendAVX that also stores the updated values rounded to float32 at low (VCVTPD2PS
// rounds to nearest even under Go's MXCSR, as float32(x) does).
TEXT ·descendNarrowAVX(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         low+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSD lr+32(FP), Y14
	VBROADCASTSD wd+40(FP), Y15
	SHRQ         $3, CX
	JZ           descendNarrowDone

descendNarrowLoop:
	DESCEND8((SI), 32(SI))
	NARROW8
	ADDQ       $64, DI
	ADDQ       $64, SI
	ADDQ       $32, DX
	DECQ       CX
	JNZ        descendNarrowLoop

descendNarrowDone:
	VZEROUPPER
	RET

// func descendDrainAVX(p *float64, src, low *float32, n int, lr, wd float64)
//
// descendNarrowAVX from the gradients 0 + src widened (the sum Drain forms in a zeroed
// float64 vector: −0 becomes +0).
TEXT ·descendDrainAVX(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         src+8(FP), R8
	MOVQ         low+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSD lr+32(FP), Y14
	VBROADCASTSD wd+40(FP), Y15
	VXORPD       Y13, Y13, Y13
	SHRQ         $3, CX
	JZ           descendDrainDone

descendDrainLoop:
	WIDEN8
	DESCEND8(Y6, Y7)
	NARROW8
	ADDQ      $64, DI
	ADDQ      $32, R8
	ADDQ      $32, DX
	DECQ      CX
	JNZ       descendDrainLoop

descendDrainDone:
	VZEROUPPER
	RET

// func descendDrainNoiseAVX(p *float64, src *float32, z *float64, std float64, low *float32, n int, lr, wd float64)
//
// descendDrainAVX from the gradients (0 + src widened) + std·z, rounded after the multiply
// and after the addition as DescendDrainNoise's loop rounds them; z is zeroed as it is read.
TEXT ·descendDrainNoiseAVX(SB), NOSPLIT, $0-64
	MOVQ         p+0(FP), DI
	MOVQ         src+8(FP), R8
	MOVQ         z+16(FP), R9
	VBROADCASTSD std+24(FP), Y12
	MOVQ         low+32(FP), DX
	MOVQ         n+40(FP), CX
	VBROADCASTSD lr+48(FP), Y14
	VBROADCASTSD wd+56(FP), Y15
	VXORPD       Y13, Y13, Y13
	SHRQ         $3, CX
	JZ           descendDrainNoiseDone

descendDrainNoiseLoop:
	WIDEN8
	VMULPD    (R9), Y12, Y8
	VMULPD    32(R9), Y12, Y9
	VMOVUPD   Y13, (R9)
	VMOVUPD   Y13, 32(R9)
	VADDPD    Y8, Y6, Y6
	VADDPD    Y9, Y7, Y7
	DESCEND8(Y6, Y7)
	NARROW8
	ADDQ      $64, DI
	ADDQ      $32, R8
	ADDQ      $64, R9
	ADDQ      $32, DX
	DECQ      CX
	JNZ       descendDrainNoiseLoop

descendDrainNoiseDone:
	VZEROUPPER
	RET
