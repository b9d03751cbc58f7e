//go:build amd64 && !purego

#include "textflag.h"

// Conversions between float64 and float32 slices, 16 values an iteration. VCVTPD2PS rounds
// by MXCSR, round to nearest even under Go, as CVTSD2SS (Go's float32(x)) does; VCVTPS2PD is
// exact.

// func narrowAVX(dst *float32, src *float64, n int)
TEXT ·narrowAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   narrowDone

narrowLoop:
	VCVTPD2PSY (SI), X0
	VCVTPD2PSY 32(SI), X1
	VCVTPD2PSY 64(SI), X2
	VCVTPD2PSY 96(SI), X3
	VMOVUPS    X0, (DI)
	VMOVUPS    X1, 16(DI)
	VMOVUPS    X2, 32(DI)
	VMOVUPS    X3, 48(DI)
	ADDQ       $128, SI
	ADDQ       $64, DI
	DECQ       CX
	JNZ        narrowLoop

narrowDone:
	VZEROUPPER
	RET

// func drainAVX(dst *float64, src *float32, n int)
//
// dst += src widened; src = 0.
TEXT ·drainAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ $4, CX
	JZ   drainDone

drainLoop:
	VCVTPS2PD (SI), Y0
	VCVTPS2PD 16(SI), Y1
	VCVTPS2PD 32(SI), Y2
	VCVTPS2PD 48(SI), Y3
	VADDPD    (DI), Y0, Y0
	VADDPD    32(DI), Y1, Y1
	VADDPD    64(DI), Y2, Y2
	VADDPD    96(DI), Y3, Y3
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	VMOVUPD   Y2, 64(DI)
	VMOVUPD   Y3, 96(DI)
	VMOVUPS   Y15, (SI)
	VMOVUPS   Y15, 32(SI)
	ADDQ      $64, SI
	ADDQ      $128, DI
	DECQ      CX
	JNZ       drainLoop

drainDone:
	VZEROUPPER
	RET
