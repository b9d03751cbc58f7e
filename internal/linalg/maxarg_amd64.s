//go:build amd64 && !purego

#include "textflag.h"

DATA maxargIota<>+0(SB)/4, $0
DATA maxargIota<>+4(SB)/4, $1
DATA maxargIota<>+8(SB)/4, $2
DATA maxargIota<>+12(SB)/4, $3
DATA maxargIota<>+16(SB)/4, $4
DATA maxargIota<>+20(SB)/4, $5
DATA maxargIota<>+24(SB)/4, $6
DATA maxargIota<>+28(SB)/4, $7
GLOBL maxargIota<>(SB), RODATA|NOPTR, $32

DATA maxargEight<>+0(SB)/4, $8
GLOBL maxargEight<>(SB), RODATA|NOPTR, $4

// func maxArg32AVX(y *float32, arg *int32, x *float32, n int, base int32)
//
// Eight values an iteration: arg takes the position where y < x (ordered, so a NaN x never
// moves it); y takes VMAXPS(y, x), then x AND y where they are equal (+0 over −0) and x + y
// where either is NaN (a NaN), which is Go's max.
TEXT ·maxArg32AVX(SB), NOSPLIT, $0-36
	MOVQ         y+0(FP), DI
	MOVQ         arg+8(FP), DX
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	MOVL         base+32(FP), AX
	VMOVD        AX, X10
	VPBROADCASTD X10, Y10
	VPADDD       maxargIota<>(SB), Y10, Y10
	VPBROADCASTD maxargEight<>(SB), Y11
	SHRQ         $3, CX
	JZ           maxargDone

maxargLoop:
	VMOVUPS   (DI), Y0
	VMOVUPS   (SI), Y1
	VMOVDQU   (DX), Y2
	VCMPPS    $0x11, Y1, Y0, Y3
	VBLENDVPS Y3, Y10, Y2, Y2
	VMAXPS    Y1, Y0, Y4
	VCMPPS    $0x00, Y1, Y0, Y5
	VANDPS    Y1, Y0, Y6
	VBLENDVPS Y5, Y6, Y4, Y4
	VCMPPS    $0x03, Y1, Y0, Y7
	VADDPS    Y1, Y0, Y8
	VBLENDVPS Y7, Y8, Y4, Y4
	VMOVUPS   Y4, (DI)
	VMOVDQU   Y2, (DX)
	VPADDD    Y11, Y10, Y10
	ADDQ      $32, DI
	ADDQ      $32, SI
	ADDQ      $32, DX
	DECQ      CX
	JNZ       maxargLoop

maxargDone:
	VZEROUPPER
	RET
