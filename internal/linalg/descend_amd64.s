//go:build amd64 && !purego

#include "textflag.h"

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
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMULPD  Y15, Y0, Y2
	VMULPD  Y15, Y1, Y3
	VADDPD  (SI), Y2, Y2
	VADDPD  32(SI), Y3, Y3
	VMULPD  Y14, Y2, Y2
	VMULPD  Y14, Y3, Y3
	VSUBPD  Y2, Y0, Y0
	VSUBPD  Y3, Y1, Y1
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNZ     descendLoop

descendDone:
	VZEROUPPER
	RET
