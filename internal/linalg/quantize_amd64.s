//go:build amd64 && !purego

#include "textflag.h"

// func quantizeRowAVX2(dst *int16, x *float64, n int, inv float64, consts *[4]float64)
TEXT ·quantizeRowAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ consts+32(FP), R9
	VBROADCASTSD inv+24(FP), Y15
	VBROADCASTSD 0(R9), Y14  // 127
	VBROADCASTSD 8(R9), Y13  // −127
	VBROADCASTSD 16(R9), Y12 // 0.5
	VBROADCASTSD 24(R9), Y11 // sign mask
	SHRQ $2, CX
	JZ   done

loop:
	VMULPD      (SI), Y15, Y0
	VMINPD      Y14, Y0, Y0
	VMAXPD      Y13, Y0, Y0
	VANDPD      Y11, Y0, Y1
	VORPD       Y12, Y1, Y1
	VADDPD      Y1, Y0, Y0
	VCVTTPD2DQY Y0, X0
	VPACKSSDW   X0, X0, X0
	MOVQ        X0, (DI)
	ADDQ        $32, SI
	ADDQ        $8, DI
	DECQ        CX
	JNZ         loop

done:
	VZEROUPPER
	RET

// func storeTileAVX2(dst *float64, ldd int, rows int, xs *float64, w *float64, out *int32, acc bool)
// For r < rows: dst[r·ldd : r·ldd+4] (+)= (xs[r]·w[0:4])·float64(out[4r : 4r+4]).
// out's values are loaded one by one: the dot kernels store them one by one, and a 16-byte
// load of four fresh 4-byte stores cannot be forwarded from the store buffer (it stalls
// until they retire).
TEXT ·storeTileAVX2(SB), NOSPLIT, $0-49
	MOVQ    dst+0(FP), DI
	MOVQ    ldd+8(FP), R8
	SHLQ    $3, R8
	MOVQ    rows+16(FP), CX
	MOVQ    xs+24(FP), SI
	MOVQ    w+32(FP), R9
	MOVQ    out+40(FP), DX
	MOVBQZX acc+48(FP), AX
	VMOVUPD (R9), Y15
	TESTQ   CX, CX
	JZ      sdone
	TESTQ   AX, AX
	JNZ     accloop

setloop:
	VBROADCASTSD (SI), Y0
	VMULPD       Y15, Y0, Y0
	VMOVD        (DX), X1
	VPINSRD      $1, 4(DX), X1, X1
	VPINSRD      $2, 8(DX), X1, X1
	VPINSRD      $3, 12(DX), X1, X1
	VCVTDQ2PD    X1, Y1
	VMULPD       Y1, Y0, Y0
	VMOVUPD      Y0, (DI)
	ADDQ         $8, SI
	ADDQ         $16, DX
	ADDQ         R8, DI
	DECQ         CX
	JNZ          setloop
	JMP          sdone

accloop:
	VBROADCASTSD (SI), Y0
	VMULPD       Y15, Y0, Y0
	VMOVD        (DX), X1
	VPINSRD      $1, 4(DX), X1, X1
	VPINSRD      $2, 8(DX), X1, X1
	VPINSRD      $3, 12(DX), X1, X1
	VCVTDQ2PD    X1, Y1
	VMULPD       Y1, Y0, Y0
	VADDPD       (DI), Y0, Y0
	VMOVUPD      Y0, (DI)
	ADDQ         $8, SI
	ADDQ         $16, DX
	ADDQ         R8, DI
	DECQ         CX
	JNZ          accloop

sdone:
	VZEROUPPER
	RET
