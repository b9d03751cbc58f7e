//go:build amd64 && !purego

#include "textflag.h"

// One k step of the micro-kernel: B row (8 values at DI) times A's six values of one
// depth index, at SI, SI+R10, SI+2·R10 (rows 0–2) and R11, R11+R10, R11+2·R10 (rows 3–5);
// both bases then advance by R12.
#define STEPS \
	VMOVUPD      (DI), Y0;         \
	VMOVUPD      32(DI), Y1;       \
	ADDQ         R9, DI;           \
	VBROADCASTSD (SI), Y2;         \
	VBROADCASTSD (SI)(R10*1), Y3;  \
	VFMADD231PD  Y0, Y2, Y4;       \
	VFMADD231PD  Y1, Y2, Y5;       \
	VFMADD231PD  Y0, Y3, Y6;       \
	VFMADD231PD  Y1, Y3, Y7;       \
	VBROADCASTSD (SI)(R10*2), Y2;  \
	VBROADCASTSD (R11), Y3;        \
	VFMADD231PD  Y0, Y2, Y8;       \
	VFMADD231PD  Y1, Y2, Y9;       \
	VFMADD231PD  Y0, Y3, Y10;      \
	VFMADD231PD  Y1, Y3, Y11;      \
	VBROADCASTSD (R11)(R10*1), Y2; \
	VBROADCASTSD (R11)(R10*2), Y3; \
	VFMADD231PD  Y0, Y2, Y12;      \
	VFMADD231PD  Y1, Y2, Y13;      \
	VFMADD231PD  Y0, Y3, Y14;      \
	VFMADD231PD  Y1, Y3, Y15;      \
	ADDQ         R12, SI;          \
	ADDQ         R12, R11

// func kernel6x8(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)
TEXT ·kernel6x8(SB), NOSPLIT, $0-65
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsA+16(FP), R10
	SHLQ $3, R10
	MOVQ csA+24(FP), R12
	SHLQ $3, R12
	LEAQ (SI)(R10*2), R11
	ADDQ R10, R11
	MOVQ b+32(FP), DI
	MOVQ ldb+40(FP), R9
	SHLQ $3, R9
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $3, R8

	// Touch the six rows of C early so their lines arrive while the loop runs.
	MOVQ        DX, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)
	ADDQ        R8, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)
	ADDQ        R8, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)
	ADDQ        R8, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)
	ADDQ        R8, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)
	ADDQ        R8, AX
	PREFETCHT0  (AX)
	PREFETCHT0  32(AX)

	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	VXORPD Y14, Y14, Y14
	VXORPD Y15, Y15, Y15

	MOVQ CX, BX
	SHRQ $2, BX
	ANDQ $3, CX
	TESTQ BX, BX
	JEQ  tail

loop4:
	STEPS
	STEPS
	STEPS
	STEPS
	DECQ BX
	JNE  loop4

tail:
	TESTQ CX, CX
	JEQ   store

loop1:
	STEPS
	DECQ CX
	JNE  loop1

store:
	MOVBQZX acc+64(FP), AX
	TESTQ   AX, AX
	JEQ     overwrite

	VADDPD  (DX), Y4, Y4
	VADDPD  32(DX), Y5, Y5
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	ADDQ    R8, DX
	VADDPD  (DX), Y6, Y6
	VADDPD  32(DX), Y7, Y7
	VMOVUPD Y6, (DX)
	VMOVUPD Y7, 32(DX)
	ADDQ    R8, DX
	VADDPD  (DX), Y8, Y8
	VADDPD  32(DX), Y9, Y9
	VMOVUPD Y8, (DX)
	VMOVUPD Y9, 32(DX)
	ADDQ    R8, DX
	VADDPD  (DX), Y10, Y10
	VADDPD  32(DX), Y11, Y11
	VMOVUPD Y10, (DX)
	VMOVUPD Y11, 32(DX)
	ADDQ    R8, DX
	VADDPD  (DX), Y12, Y12
	VADDPD  32(DX), Y13, Y13
	VMOVUPD Y12, (DX)
	VMOVUPD Y13, 32(DX)
	ADDQ    R8, DX
	VADDPD  (DX), Y14, Y14
	VADDPD  32(DX), Y15, Y15
	VMOVUPD Y14, (DX)
	VMOVUPD Y15, 32(DX)
	VZEROUPPER
	RET

overwrite:
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	ADDQ    R8, DX
	VMOVUPD Y6, (DX)
	VMOVUPD Y7, 32(DX)
	ADDQ    R8, DX
	VMOVUPD Y8, (DX)
	VMOVUPD Y9, 32(DX)
	ADDQ    R8, DX
	VMOVUPD Y10, (DX)
	VMOVUPD Y11, 32(DX)
	ADDQ    R8, DX
	VMOVUPD Y12, (DX)
	VMOVUPD Y13, 32(DX)
	ADDQ    R8, DX
	VMOVUPD Y14, (DX)
	VMOVUPD Y15, 32(DX)
	VZEROUPPER
	RET
