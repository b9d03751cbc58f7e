//go:build amd64 && !purego

#include "textflag.h"

// Vector exp, sigmoid and tanh, four float64 lanes at a time with AVX2 and FMA.
//
// exp(x) = 2^k·exp(r) with k = round(x/ln 2) and r = x − k·ln 2 (Cody & Waite reduction, ln 2
// split so that k·ln2hi is exact for |k| < 2^11), |r| ≤ ln(2)/2, and exp(r) by its Taylor
// polynomial of degree 13 (truncation error below 5e-18 relative), evaluated by Horner's rule
// with fused multiply-adds; 2^k is built in the exponent field. Each function stops before
// the first group of four that holds an input it does not handle (exp outside [−708, 709],
// sigmoid below −708, NaN) and returns how many values it wrote, so the caller can finish
// that group with the scalar functions.

// 1/2!
DATA expc2<>+0(SB)/8, $0x3fe0000000000000
DATA expc2<>+8(SB)/8, $0x3fe0000000000000
DATA expc2<>+16(SB)/8, $0x3fe0000000000000
DATA expc2<>+24(SB)/8, $0x3fe0000000000000
GLOBL expc2<>(SB), RODATA|NOPTR, $32

// 1/3!
DATA expc3<>+0(SB)/8, $0x3fc5555555555555
DATA expc3<>+8(SB)/8, $0x3fc5555555555555
DATA expc3<>+16(SB)/8, $0x3fc5555555555555
DATA expc3<>+24(SB)/8, $0x3fc5555555555555
GLOBL expc3<>(SB), RODATA|NOPTR, $32

// 1/4!
DATA expc4<>+0(SB)/8, $0x3fa5555555555555
DATA expc4<>+8(SB)/8, $0x3fa5555555555555
DATA expc4<>+16(SB)/8, $0x3fa5555555555555
DATA expc4<>+24(SB)/8, $0x3fa5555555555555
GLOBL expc4<>(SB), RODATA|NOPTR, $32

// 1/5!
DATA expc5<>+0(SB)/8, $0x3f81111111111111
DATA expc5<>+8(SB)/8, $0x3f81111111111111
DATA expc5<>+16(SB)/8, $0x3f81111111111111
DATA expc5<>+24(SB)/8, $0x3f81111111111111
GLOBL expc5<>(SB), RODATA|NOPTR, $32

// 1/6!
DATA expc6<>+0(SB)/8, $0x3f56c16c16c16c17
DATA expc6<>+8(SB)/8, $0x3f56c16c16c16c17
DATA expc6<>+16(SB)/8, $0x3f56c16c16c16c17
DATA expc6<>+24(SB)/8, $0x3f56c16c16c16c17
GLOBL expc6<>(SB), RODATA|NOPTR, $32

// 1/7!
DATA expc7<>+0(SB)/8, $0x3f2a01a01a01a01a
DATA expc7<>+8(SB)/8, $0x3f2a01a01a01a01a
DATA expc7<>+16(SB)/8, $0x3f2a01a01a01a01a
DATA expc7<>+24(SB)/8, $0x3f2a01a01a01a01a
GLOBL expc7<>(SB), RODATA|NOPTR, $32

// 1/8!
DATA expc8<>+0(SB)/8, $0x3efa01a01a01a01a
DATA expc8<>+8(SB)/8, $0x3efa01a01a01a01a
DATA expc8<>+16(SB)/8, $0x3efa01a01a01a01a
DATA expc8<>+24(SB)/8, $0x3efa01a01a01a01a
GLOBL expc8<>(SB), RODATA|NOPTR, $32

// 1/9!
DATA expc9<>+0(SB)/8, $0x3ec71de3a556c734
DATA expc9<>+8(SB)/8, $0x3ec71de3a556c734
DATA expc9<>+16(SB)/8, $0x3ec71de3a556c734
DATA expc9<>+24(SB)/8, $0x3ec71de3a556c734
GLOBL expc9<>(SB), RODATA|NOPTR, $32

// 1/10!
DATA expc10<>+0(SB)/8, $0x3e927e4fb7789f5c
DATA expc10<>+8(SB)/8, $0x3e927e4fb7789f5c
DATA expc10<>+16(SB)/8, $0x3e927e4fb7789f5c
DATA expc10<>+24(SB)/8, $0x3e927e4fb7789f5c
GLOBL expc10<>(SB), RODATA|NOPTR, $32

// 1/11!
DATA expc11<>+0(SB)/8, $0x3e5ae64567f544e4
DATA expc11<>+8(SB)/8, $0x3e5ae64567f544e4
DATA expc11<>+16(SB)/8, $0x3e5ae64567f544e4
DATA expc11<>+24(SB)/8, $0x3e5ae64567f544e4
GLOBL expc11<>(SB), RODATA|NOPTR, $32

// 1/12!
DATA expc12<>+0(SB)/8, $0x3e21eed8eff8d898
DATA expc12<>+8(SB)/8, $0x3e21eed8eff8d898
DATA expc12<>+16(SB)/8, $0x3e21eed8eff8d898
DATA expc12<>+24(SB)/8, $0x3e21eed8eff8d898
GLOBL expc12<>(SB), RODATA|NOPTR, $32

// 1/13!
DATA expc13<>+0(SB)/8, $0x3de6124613a86d09
DATA expc13<>+8(SB)/8, $0x3de6124613a86d09
DATA expc13<>+16(SB)/8, $0x3de6124613a86d09
DATA expc13<>+24(SB)/8, $0x3de6124613a86d09
GLOBL expc13<>(SB), RODATA|NOPTR, $32

// log2(e)
DATA log2e<>+0(SB)/8, $0x3ff71547652b82fe
DATA log2e<>+8(SB)/8, $0x3ff71547652b82fe
DATA log2e<>+16(SB)/8, $0x3ff71547652b82fe
DATA log2e<>+24(SB)/8, $0x3ff71547652b82fe
GLOBL log2e<>(SB), RODATA|NOPTR, $32

// 1.5·2^52: adding it rounds to an integer
DATA magic<>+0(SB)/8, $0x4338000000000000
DATA magic<>+8(SB)/8, $0x4338000000000000
DATA magic<>+16(SB)/8, $0x4338000000000000
DATA magic<>+24(SB)/8, $0x4338000000000000
GLOBL magic<>(SB), RODATA|NOPTR, $32

// ln 2, high 32 bits (fdlibm's ln2HI)
DATA ln2hi<>+0(SB)/8, $0x3fe62e42fee00000
DATA ln2hi<>+8(SB)/8, $0x3fe62e42fee00000
DATA ln2hi<>+16(SB)/8, $0x3fe62e42fee00000
DATA ln2hi<>+24(SB)/8, $0x3fe62e42fee00000
GLOBL ln2hi<>(SB), RODATA|NOPTR, $32

// ln 2 − ln2hi
DATA ln2lo<>+0(SB)/8, $0x3dea39ef35793c76
DATA ln2lo<>+8(SB)/8, $0x3dea39ef35793c76
DATA ln2lo<>+16(SB)/8, $0x3dea39ef35793c76
DATA ln2lo<>+24(SB)/8, $0x3dea39ef35793c76
GLOBL ln2lo<>(SB), RODATA|NOPTR, $32

// -708
DATA explo<>+0(SB)/8, $0xc086200000000000
DATA explo<>+8(SB)/8, $0xc086200000000000
DATA explo<>+16(SB)/8, $0xc086200000000000
DATA explo<>+24(SB)/8, $0xc086200000000000
GLOBL explo<>(SB), RODATA|NOPTR, $32

// 709
DATA exphi<>+0(SB)/8, $0x4086280000000000
DATA exphi<>+8(SB)/8, $0x4086280000000000
DATA exphi<>+16(SB)/8, $0x4086280000000000
DATA exphi<>+24(SB)/8, $0x4086280000000000
GLOBL exphi<>(SB), RODATA|NOPTR, $32

// 1
DATA one<>+0(SB)/8, $0x3ff0000000000000
DATA one<>+8(SB)/8, $0x3ff0000000000000
DATA one<>+16(SB)/8, $0x3ff0000000000000
DATA one<>+24(SB)/8, $0x3ff0000000000000
GLOBL one<>(SB), RODATA|NOPTR, $32

// 0.625
DATA c0625<>+0(SB)/8, $0x3fe4000000000000
DATA c0625<>+8(SB)/8, $0x3fe4000000000000
DATA c0625<>+16(SB)/8, $0x3fe4000000000000
DATA c0625<>+24(SB)/8, $0x3fe4000000000000
GLOBL c0625<>(SB), RODATA|NOPTR, $32

// 88
DATA c88<>+0(SB)/8, $0x4056000000000000
DATA c88<>+8(SB)/8, $0x4056000000000000
DATA c88<>+16(SB)/8, $0x4056000000000000
DATA c88<>+24(SB)/8, $0x4056000000000000
GLOBL c88<>(SB), RODATA|NOPTR, $32

// tanh P0
DATA tp0<>+0(SB)/8, $0xbfeedc5baafd6f4b
DATA tp0<>+8(SB)/8, $0xbfeedc5baafd6f4b
DATA tp0<>+16(SB)/8, $0xbfeedc5baafd6f4b
DATA tp0<>+24(SB)/8, $0xbfeedc5baafd6f4b
GLOBL tp0<>(SB), RODATA|NOPTR, $32

// tanh P1
DATA tp1<>+0(SB)/8, $0xc058d26a0e26682d
DATA tp1<>+8(SB)/8, $0xc058d26a0e26682d
DATA tp1<>+16(SB)/8, $0xc058d26a0e26682d
DATA tp1<>+24(SB)/8, $0xc058d26a0e26682d
GLOBL tp1<>(SB), RODATA|NOPTR, $32

// tanh P2
DATA tp2<>+0(SB)/8, $0xc0993ac030580563
DATA tp2<>+8(SB)/8, $0xc0993ac030580563
DATA tp2<>+16(SB)/8, $0xc0993ac030580563
DATA tp2<>+24(SB)/8, $0xc0993ac030580563
GLOBL tp2<>(SB), RODATA|NOPTR, $32

// tanh Q0
DATA tq0<>+0(SB)/8, $0x405c33f28a581b86
DATA tq0<>+8(SB)/8, $0x405c33f28a581b86
DATA tq0<>+16(SB)/8, $0x405c33f28a581b86
DATA tq0<>+24(SB)/8, $0x405c33f28a581b86
GLOBL tq0<>(SB), RODATA|NOPTR, $32

// tanh Q1
DATA tq1<>+0(SB)/8, $0x40a176fa0e5535fa
DATA tq1<>+8(SB)/8, $0x40a176fa0e5535fa
DATA tq1<>+16(SB)/8, $0x40a176fa0e5535fa
DATA tq1<>+24(SB)/8, $0x40a176fa0e5535fa
GLOBL tq1<>(SB), RODATA|NOPTR, $32

// tanh Q2
DATA tq2<>+0(SB)/8, $0x40b2ec102442040c
DATA tq2<>+8(SB)/8, $0x40b2ec102442040c
DATA tq2<>+16(SB)/8, $0x40b2ec102442040c
DATA tq2<>+24(SB)/8, $0x40b2ec102442040c
GLOBL tq2<>(SB), RODATA|NOPTR, $32

// sign bit
DATA signbit<>+0(SB)/8, $0x8000000000000000
DATA signbit<>+8(SB)/8, $0x8000000000000000
DATA signbit<>+16(SB)/8, $0x8000000000000000
DATA signbit<>+24(SB)/8, $0x8000000000000000
GLOBL signbit<>(SB), RODATA|NOPTR, $32

// all but the sign bit
DATA absmask<>+0(SB)/8, $0x7fffffffffffffff
DATA absmask<>+8(SB)/8, $0x7fffffffffffffff
DATA absmask<>+16(SB)/8, $0x7fffffffffffffff
DATA absmask<>+24(SB)/8, $0x7fffffffffffffff
GLOBL absmask<>(SB), RODATA|NOPTR, $32

// exponent bias 1023 (integer)
DATA bias<>+0(SB)/8, $0x00000000000003ff
DATA bias<>+8(SB)/8, $0x00000000000003ff
DATA bias<>+16(SB)/8, $0x00000000000003ff
DATA bias<>+24(SB)/8, $0x00000000000003ff
GLOBL bias<>(SB), RODATA|NOPTR, $32
// EXP sets X to exp(X), for X in [−708, 709]; T1 and T2 are clobbered.
#define EXP(X, T1, T2) \
	VMOVUPD      magic<>(SB), T1;     \
	VFMADD231PD  log2e<>(SB), X, T1;  \
	VSUBPD       magic<>(SB), T1, T2; \
	VFNMADD231PD ln2hi<>(SB), T2, X;  \
	VFNMADD231PD ln2lo<>(SB), T2, X;  \
	VPADDQ       bias<>(SB), T1, T1;  \
	VPSLLQ       $52, T1, T1;         \
	VMOVUPD      expc13<>(SB), T2;    \
	VFMADD213PD  expc12<>(SB), X, T2; \
	VFMADD213PD  expc11<>(SB), X, T2; \
	VFMADD213PD  expc10<>(SB), X, T2; \
	VFMADD213PD  expc9<>(SB), X, T2;  \
	VFMADD213PD  expc8<>(SB), X, T2;  \
	VFMADD213PD  expc7<>(SB), X, T2;  \
	VFMADD213PD  expc6<>(SB), X, T2;  \
	VFMADD213PD  expc5<>(SB), X, T2;  \
	VFMADD213PD  expc4<>(SB), X, T2;  \
	VFMADD213PD  expc3<>(SB), X, T2;  \
	VFMADD213PD  expc2<>(SB), X, T2;  \
	VFMADD213PD  one<>(SB), X, T2;    \
	VFMADD213PD  one<>(SB), X, T2;    \
	VMULPD       T1, T2, X

// MAP is the loop of a kernel over groups of LANES values of SIZE bytes: CHECK sets Y4 to
// the lanes of Y0 it handles (MOVMSK takes their mask), BODY maps Y0, clobbering Y1–Y3 and
// Y5–Y8. It stops before the first group with a lane CHECK refuses and returns the number
// of values written.
#define MAP(SIZE, LANES, MOVMSK, CHECK, BODY) \
	MOVQ dst_base+0(FP), DI;        \
	MOVQ src_base+24(FP), SI;       \
	MOVQ src_len+32(FP), CX;        \
	ANDQ $-LANES, CX;               \
	XORQ AX, AX;                    \
loop:                               \
	CMPQ    AX, CX;                 \
	JGE     done;                   \
	VMOVUPS (SI)(AX*SIZE), Y0;      \
	CHECK;                          \
	MOVMSK  Y4, BX;                 \
	CMPQ    BX, $((1<<LANES)-1);    \
	JNE     done;                   \
	BODY;                           \
	VMOVUPS Y0, (DI)(AX*SIZE);      \
	ADDQ    $LANES, AX;             \
	JMP     loop;                   \
done:                               \
	MOVQ AX, ret+48(FP);            \
	VZEROUPPER;                     \
	RET

#define EXPCHECK \
	VCMPPD $0x1d, explo<>(SB), Y0, Y4; \
	VCMPPD $0x12, exphi<>(SB), Y0, Y5; \
	VANDPD Y4, Y5, Y4

#define EXPBODY EXP(Y0, Y1, Y2)

// func expAVX2(dst, src []float64) int
TEXT ·expAVX2(SB), NOSPLIT, $0-56
	MAP(8, 4, VMOVMSKPD, EXPCHECK, EXPBODY)

// sigmoid(x) = 1/(1 + exp(−x)); for x > 708 exp(−x) is clamped to exp(−708), which gives 1
// as the exact result rounds to.
#define SIGCHECK VCMPPD $0x1d, explo<>(SB), Y0, Y4

#define SIGMOID \
	VXORPD  signbit<>(SB), Y0, Y0; \
	VMAXPD  explo<>(SB), Y0, Y0;   \
	EXP(Y0, Y1, Y2);               \
	VADDPD  one<>(SB), Y0, Y0;     \
	VMOVUPD one<>(SB), Y1;         \
	VDIVPD  Y0, Y1, Y0

// func sigmoidAVX2(dst, src []float64) int
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-56
	MAP(8, 4, VMOVMSKPD, SIGCHECK, SIGMOID)

// tanh as Go's math.Tanh computes it (Cephes): for |x| ≥ 0.625, sign(x)·(e − 1)/(e + 1) with
// e = exp(2|x|) (2|x| clamped to 88, beyond which the result is ±1 in float64); below,
// x + x·s·P(s)/Q(s) with s = x², written as (x·Q + x·s·P)/Q so both branches share one
// division. Only NaN is refused.
#define TANHCHECK VCMPPD $0x07, Y0, Y0, Y4

#define TANH \
	VANDPD      absmask<>(SB), Y0, Y1;    \
	VCMPPD      $0x1d, c0625<>(SB), Y1, Y6; \
	VADDPD      Y1, Y1, Y2;               \
	VMINPD      c88<>(SB), Y2, Y2;        \
	EXP(Y2, Y3, Y5);                      \
	VSUBPD      one<>(SB), Y2, Y3;        \
	VADDPD      one<>(SB), Y2, Y2;        \
	VANDPD      signbit<>(SB), Y0, Y5;    \
	VXORPD      Y5, Y3, Y3;               \
	VMULPD      Y0, Y0, Y1;               \
	VMOVUPD     tp0<>(SB), Y5;            \
	VFMADD213PD tp1<>(SB), Y1, Y5;        \
	VFMADD213PD tp2<>(SB), Y1, Y5;        \
	VADDPD      tq0<>(SB), Y1, Y7;        \
	VFMADD213PD tq1<>(SB), Y1, Y7;        \
	VFMADD213PD tq2<>(SB), Y1, Y7;        \
	VMULPD      Y0, Y1, Y1;               \
	VMULPD      Y0, Y7, Y8;               \
	VFMADD231PD Y5, Y1, Y8;               \
	VBLENDVPD   Y6, Y3, Y8, Y3;           \
	VBLENDVPD   Y6, Y2, Y7, Y2;           \
	VDIVPD      Y2, Y3, Y0

// func tanhAVX2(dst, src []float64) int
TEXT ·tanhAVX2(SB), NOSPLIT, $0-56
	MAP(8, 4, VMOVMSKPD, TANHCHECK, TANH)

// The float32 kernels: eight lanes at a time, after Cephes' expf and tanhf (Moshier 1992):
// exp(x) = 2^k·exp(r) with k = round(x/ln 2), r = x − k·C1 − k·C2 (C1 = 0.693359375 exact
// in 9 bits, so k·C1 is exact), |r| ≤ ln(2)/2, and exp(r) = 1 + r + r²·P(r) with Cephes'
// degree-5 P (relative error below 2^-24 on the reduction range), computed as
// 1 + r·(1 + r·P(r)) with fused multiply-adds. exp handles [−87, 88], where both exp(x) and
// 2^k are normal float32 values; sigmoid, x ≥ −87. Each function stops before the first
// group of eight that holds an input it does not handle, as the float64 ones do (MAP).

#define CONST8(NAME, BITS) \
	DATA NAME<>+0(SB)/4, $BITS; DATA NAME<>+4(SB)/4, $BITS; DATA NAME<>+8(SB)/4, $BITS;   \
	DATA NAME<>+12(SB)/4, $BITS; DATA NAME<>+16(SB)/4, $BITS; DATA NAME<>+20(SB)/4, $BITS; \
	DATA NAME<>+24(SB)/4, $BITS; DATA NAME<>+28(SB)/4, $BITS;                              \
	GLOBL NAME<>(SB), RODATA|NOPTR, $32

CONST8(log2ef, 0x3fb8aa3b)  // log2(e)
CONST8(ln2hif, 0x3f318000)  // C1 = 0.693359375
CONST8(ln2lof, 0xb95e8083)  // C2 = −2.12194440e-4, ln 2 − C1
CONST8(expp0f, 0x39506967)  // 1.9875691500e-4
CONST8(expp1f, 0x3ab743ce)  // 1.3981999507e-3
CONST8(expp2f, 0x3c088908)  // 8.3334519073e-3
CONST8(expp3f, 0x3d2aa9c1)  // 4.1665795894e-2
CONST8(expp4f, 0x3e2aaaaa)  // 1.6666665459e-1
CONST8(expp5f, 0x3f000000)  // 5.0000001201e-1 (0.5 in float32)
CONST8(biasf, 0x0000007f)   // exponent bias 127 (integer)
CONST8(onef, 0x3f800000)    // 1
CONST8(explof, 0xc2ae0000)  // −87
CONST8(exphif, 0x42b00000)  // 88
CONST8(c0625f, 0x3f200000)  // 0.625
CONST8(c20f, 0x41a00000)    // 20
CONST8(signf, 0x80000000)   // sign bit
CONST8(absf, 0x7fffffff)    // all but the sign bit
CONST8(tanhp0f, 0xbbbaf0ea) // −5.70498872745e-3
CONST8(tanhp1f, 0x3ca9134e) // 2.06390887954e-2
CONST8(tanhp2f, 0xbd5c1e2d) // −5.37397155531e-2
CONST8(tanhp3f, 0x3e088393) // 1.33314422036e-1
CONST8(tanhp4f, 0xbeaaaa99) // −3.33332819422e-1

// EXP32 sets X to exp(X), for X in [−87, 88]; T1 and T2 are clobbered.
#define EXP32(X, T1, T2) \
	VMULPS       log2ef<>(SB), X, T1; \
	VROUNDPS     $0, T1, T1;          \
	VFNMADD231PS ln2hif<>(SB), T1, X; \
	VFNMADD231PS ln2lof<>(SB), T1, X; \
	VCVTPS2DQ    T1, T1;              \
	VPADDD       biasf<>(SB), T1, T1; \
	VPSLLD       $23, T1, T1;         \
	VMOVUPS      expp0f<>(SB), T2;    \
	VFMADD213PS  expp1f<>(SB), X, T2; \
	VFMADD213PS  expp2f<>(SB), X, T2; \
	VFMADD213PS  expp3f<>(SB), X, T2; \
	VFMADD213PS  expp4f<>(SB), X, T2; \
	VFMADD213PS  expp5f<>(SB), X, T2; \
	VFMADD213PS  onef<>(SB), X, T2;   \
	VFMADD213PS  onef<>(SB), X, T2;   \
	VMULPS       T1, T2, X

#define EXPCHECK32 \
	VCMPPS $0x1d, explof<>(SB), Y0, Y4; \
	VCMPPS $0x12, exphif<>(SB), Y0, Y5; \
	VANDPS Y4, Y5, Y4

#define EXPBODY32 EXP32(Y0, Y1, Y2)

// func exp32AVX2(dst, src []float32) int
TEXT ·exp32AVX2(SB), NOSPLIT, $0-56
	MAP(4, 8, VMOVMSKPS, EXPCHECK32, EXPBODY32)

// sigmoid(x) = 1/(1 + exp(−x)); for x > 87 exp(−x) is clamped to exp(−87), which gives 1
// as the exact result rounds to.
#define SIGCHECK32 VCMPPS $0x1d, explof<>(SB), Y0, Y4

#define SIGMOID32 \
	VXORPS  signf<>(SB), Y0, Y0;  \
	VMAXPS  explof<>(SB), Y0, Y0; \
	EXP32(Y0, Y1, Y2);            \
	VADDPS  onef<>(SB), Y0, Y0;   \
	VMOVUPS onef<>(SB), Y1;       \
	VDIVPS  Y0, Y1, Y0

// func sigmoid32AVX2(dst, src []float32) int
TEXT ·sigmoid32AVX2(SB), NOSPLIT, $0-56
	MAP(4, 8, VMOVMSKPS, SIGCHECK32, SIGMOID32)

// tanh as Cephes' tanhf: for |x| ≥ 0.625, sign(x)·(e − 1)/(e + 1) with e = exp(2|x|) (2|x|
// clamped to 20, beyond which the result is ±1 in float32); below, x + x·z·P(z) with z = x²
// and P of degree 4. Only NaN is refused.
#define TANHCHECK32 VCMPPS $0x07, Y0, Y0, Y4

#define TANH32 \
	VANDPS      absf<>(SB), Y0, Y1;          \
	VCMPPS      $0x1d, c0625f<>(SB), Y1, Y6; \
	VADDPS      Y1, Y1, Y2;                  \
	VMINPS      c20f<>(SB), Y2, Y2;          \
	EXP32(Y2, Y3, Y5);                       \
	VSUBPS      onef<>(SB), Y2, Y3;          \
	VADDPS      onef<>(SB), Y2, Y2;          \
	VANDPS      signf<>(SB), Y0, Y5;         \
	VXORPS      Y5, Y3, Y3;                  \
	VDIVPS      Y2, Y3, Y3;                  \
	VMULPS      Y0, Y0, Y1;                  \
	VMOVUPS     tanhp0f<>(SB), Y5;           \
	VFMADD213PS tanhp1f<>(SB), Y1, Y5;       \
	VFMADD213PS tanhp2f<>(SB), Y1, Y5;       \
	VFMADD213PS tanhp3f<>(SB), Y1, Y5;       \
	VFMADD213PS tanhp4f<>(SB), Y1, Y5;       \
	VMULPS      Y1, Y5, Y5;                  \
	VFMADD213PS Y0, Y0, Y5;                  \
	VBLENDVPS   Y6, Y3, Y5, Y0

// func tanh32AVX2(dst, src []float32) int
TEXT ·tanh32AVX2(SB), NOSPLIT, $0-56
	MAP(4, 8, VMOVMSKPS, TANHCHECK32, TANH32)
