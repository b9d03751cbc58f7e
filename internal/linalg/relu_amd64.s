//go:build amd64 && !purego

#include "textflag.h"

// func relu32AVX(dst, src *float32, n int)
//
// VMAXPS returns its second source operand when either is NaN or both are zeros, so
// max(0, x) with x second passes a NaN through; adding +0 then turns −0 into +0, as Go's
// max(x, 0) does, and leaves every other value as it is.
TEXT ·relu32AVX(SB), NOSPLIT, $0-24
	MOVQ   dst+0(FP), DI
	MOVQ   src+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ   $4, CX
	JZ     reluDone

reluLoop:
	VMAXPS  (SI), Y15, Y0
	VMAXPS  32(SI), Y15, Y1
	VADDPS  Y15, Y0, Y0
	VADDPS  Y15, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     reluLoop

reluDone:
	VZEROUPPER
	RET

// func reluGrad32AVX(dx, dy, y *float32, n int)
//
// dx = dy AND NOT (bits of y == 0).
TEXT ·reluGrad32AVX(SB), NOSPLIT, $0-32
	MOVQ  dx+0(FP), DI
	MOVQ  dy+8(FP), SI
	MOVQ  y+16(FP), DX
	MOVQ  n+24(FP), CX
	VPXOR Y15, Y15, Y15
	SHRQ  $4, CX
	JZ    gradDone

gradLoop:
	VPCMPEQD (DX), Y15, Y0
	VPCMPEQD 32(DX), Y15, Y1
	VPANDN   (SI), Y0, Y0
	VPANDN   32(SI), Y1, Y1
	VMOVDQU  Y0, (DI)
	VMOVDQU  Y1, 32(DI)
	ADDQ     $64, SI
	ADDQ     $64, DI
	ADDQ     $64, DX
	DECQ     CX
	JNZ      gradLoop

gradDone:
	VZEROUPPER
	RET
