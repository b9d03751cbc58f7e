//go:build amd64 && !purego

package linalg

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The blocked multiply follows Goto & van de Geijn 2008 ("Anatomy of high-performance
// matrix multiplication") as BLIS structures it: C is computed in mr×nr tiles by a register-
// blocked micro-kernel (kernel_amd64.s) over depth blocks of kc; B's kc×nr slivers stay in
// L1 while the kernel sweeps an mc-row block of A. Unlike BLIS, A is read in place: the
// kernel takes a row and a depth stride, so both layouts of A (NN and TN) need neither a
// transpose nor a copy; on the training shapes (k ≤ 2560, n ≤ 784) that beat packing A by
// 5–25%, and by 2–4× where n is one or two slivers wide. Only a last sliver of fewer than mr
// rows is copied out, zero-padded. B is read in place when it is row-major (a sliver row is
// nr contiguous values) and packed when it is transposed, when C is tall enough to repay
// the copy, or once for many products (PackedB).
//
// vek's kernel (the previous backend) updates a row of C with one broadcast value of A at a
// time: each fused multiply-add needs a load and a store of C, which caps it at half the
// machine's multiply-add rate whatever blocking surrounds it. Holding a 6×8 tile of C in
// twelve registers needs one load of B per two multiply-adds instead.
//
// float32 runs the same driver (generic over T) with a 6×16 kernel: a ymm register holds
// eight float32, so every fused multiply-add does twice the work of float64's at the same
// rate, and the tile, slivers and blocks take the same bytes as float64's.
//
// Where the CPU has AVX-512 (wide), the tiles are twice as wide, two zmm registers a row
// (6×16 float64, 6×32 float32): a core whose vector units are 512 bits wide (AMD Zen 5,
// Intel server cores) then does twice the multiply-adds per instruction; on this project's
// benchmark machine (Zen 5) the float32 multiplies of the MLP step ran at 46 GFLOP/s a core
// with ymm tiles, out of 107 a core's ymm multiply-adds can reach and 215 its zmm ones. The
// two kernel families sum each element in the same order, so their results are identical.
const (
	mr    = 6   // rows of a tile: 12 of the 16 ymm (zmm) registers accumulate, 2 hold B, 2 broadcast A
	kcMax = 256 // depth of a block: a kc×nr sliver of B is 16 KiB (32 KiB wide), half (two thirds) of L1
	mcMax = 96  // rows of an A block swept per sliver of B: 96×256 values are at most 192 KiB, in L2
	nrMax = 32  // the widest tile, float32's with zmm registers
)

// nrOf is the number of columns of a tile, two vector registers: 8 float64 or 16 float32
// in ymm, twice as many in zmm, so that a tile, a sliver of B and a block take the same
// bytes for either type.
func nrOf[T Float]() int {
	if wide {
		return byType[T](16, 32)
	}
	return byType[T](8, 16)
}

// packBRows is the number of rows of C from which row-major B is packed too: its slivers
// are then reused often enough to repay the copy, and packed slivers do not compete for the
// same L1 sets as C's rows when n is a multiple of 512 (rows 4 KiB apart).
const packBRows = 512

// minParallelGemm is the m·k·n below which a multiply runs on the calling goroutine. Waking
// a parked helper takes 5–10 µs at best (the scheduler's hand-off; tens to hundreds on a
// virtual machine or a busy one), the time of 2^18 multiply-adds at 40 GFLOP/s; a helper
// that wakes after the caller has taken every chunk is also unavailable to the next region
// until it has run. Helpers poll for work a while before they park (pool.go), so in a
// training step's run of multiplies they are mostly awake.
const minParallelGemm = 1 << 19

// kernel6x8 sets (acc: adds to) the 6×8 tile of C at c (row stride ldc) to the product of
// A's 6×kc sliver, value (r, p) at a[r·rsA + p·csA], and B's kc×8 sliver, row p at b[p·ldb].
//
//go:noescape
func kernel6x8(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)

// kernel6x16 is kernel6x8 for float32, with a 6×16 tile.
//
//go:noescape
func kernel6x16(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)

// kernel6x4 and kernel6x8f32 are the half-width kernels, 6×(nr/2), for the last columns of
// C when no more than half a tile is left: one ymm register a row instead of two, so the
// multiply-adds of the discarded half are not done.
//
//go:noescape
func kernel6x4(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)

//go:noescape
func kernel6x8f32(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)

// kernel6x16z, kernel6x32z, kernel6x8z and kernel6x16f32z are the AVX-512 kernels, full
// and half width: kernel6x8, kernel6x16, kernel6x4 and kernel6x8f32 with zmm registers.
//
//go:noescape
func kernel6x16z(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)

//go:noescape
func kernel6x32z(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)

//go:noescape
func kernel6x8z(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool)

//go:noescape
func kernel6x16f32z(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool)

// microKernel is T's kernel, of full (kernel6x8, kernel6x16) or half width, with ymm or
// (wide) zmm registers. All sum each element of C in the same order, so a value does not
// depend on which computed it.
func microKernel[T Float](half bool, kc int, a *T, rsA, csA int, b *T, ldb int, c *T, ldc int, acc bool) {
	w, h := 0, 0
	if wide {
		w = 1
	}
	if half {
		h = 1
	}
	if is64[T]() {
		kernels64[w][h](kc, (*float64)(unsafe.Pointer(a)), rsA, csA, (*float64)(unsafe.Pointer(b)), ldb, (*float64)(unsafe.Pointer(c)), ldc, acc)
		return
	}
	kernels32[w][h](kc, (*float32)(unsafe.Pointer(a)), rsA, csA, (*float32)(unsafe.Pointer(b)), ldb, (*float32)(unsafe.Pointer(c)), ldc, acc)
}

// kernels64 and kernels32 are the micro-kernels by [wide][half].
var (
	kernels64 = [2][2]func(kc int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int, acc bool){
		{kernel6x8, kernel6x4}, {kernel6x16z, kernel6x8z}}
	kernels32 = [2][2]func(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, acc bool){
		{kernel6x16, kernel6x8f32}, {kernel6x32z, kernel6x16f32z}}
)

func init() {
	// x/sys/cpu reports AVX-512F only where the OS also saves the zmm registers.
	hasWide = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX512F
	wide = hasWide
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		gemmFast, packFast, mulPackedFast = gemmInPlace[float64], packSlivers[float64], mulPackedBlocked[float64]
		gemmFast32, packFast32, mulPackedFast32 = gemmInPlace[float32], packSlivers[float32], mulPackedBlocked[float32]
		useFast, useFast32 = true, true
	}
}

// gemmInPlace multiplies op(A) by op(B), packing only what cannot be read in place.
func gemmInPlace[T Float](tA, tB bool, dst, a, b []T, m, k, n int, acc bool) {
	gemmBlocked(tA, tB, dst, a, b, nil, m, k, n, acc)
}

// mulPackedBlocked multiplies A by op(B) already laid out by packSlivers.
func mulPackedBlocked[T Float](dst, a []T, m int, packed []T, k, n int, acc bool) {
	gemmBlocked(false, false, dst, a, nil, packed, m, k, n, acc)
}

// packSlivers lays out all of op(B) (k×n) as blockedRegion reads it: per depth block of kc
// rows, the kc×nr slivers left to right, the last one zero-padded.
func packSlivers[T Float](dst, b []T, k, n int, trans bool) []T {
	nr := nrOf[T]()
	kc := evenBlock(k, kcMax, 1)
	np := (n + nr - 1) / nr
	dst = grow(dst, k*np*nr)
	for pc := 0; pc < k; pc += kc {
		kb := min(kc, k-pc)
		for q := 0; q < np; q++ {
			off := pc*np*nr + q*kb*nr
			packB(dst[off:off+kb*nr], trans, b, k, n, pc, kb, q*nr, min(nr, n-q*nr))
		}
	}
	return dst
}

// gemmTask is one multiply split into chunks: ranges of rows (splitRows) or columns of C
// in tile multiples.
type gemmTask[T Float] struct {
	tA, tB    bool
	a, b, c   []T
	pb        []T  // op(B) already in slivers (packSlivers), or nil
	packed    *[]T // pb's buffer when gemmBlocked packed B for this task, returned on release
	m, k, n   int
	acc       bool
	splitRows bool
	step      int // rows or columns per chunk
}

var (
	gemmTasks64 = sync.Pool{New: func() any { return new(gemmTask[float64]) }}
	gemmTasks32 = sync.Pool{New: func() any { return new(gemmTask[float32]) }}
	packedBs64  = sync.Pool{New: func() any { return new([]float64) }}
	packedBs32  = sync.Pool{New: func() any { return new([]float32) }}
)

// gemmBlocked multiplies op(A) by op(B), taking B's slivers from pb when it is not nil.
func gemmBlocked[T Float](tA, tB bool, dst, a, b, pb []T, m, k, n int, acc bool) {
	nr := nrOf[T]()
	mt, nt := (m+mr-1)/mr, (n+nr-1)/nr
	// Split along the dimension with more tiles: columns share A (read in place) and rows
	// the slivers of B, and each chunk then touches only its share of the other. But a
	// transposed B, split by rows, is packed before the chunks run, one value at a time on
	// one core: where A is no larger than B (a Linear layer's input gradient dy·Wᵀ at a
	// small batch) the columns are split instead, as long as there are two tiles for each
	// worker, and each chunk packs its own (a convolution's dy·Wᵀ, A tall and B small,
	// stays split by rows).
	splitRows := mt > nt && !(tB && pb == nil && m <= n && nt >= 2*Workers)
	tiles := nt
	if splitRows {
		tiles = mt
	}
	h := 0
	if m*k*n >= minParallelGemm {
		h = reserve(min(Workers, tiles) - 1)
	}
	if h == 0 {
		ws := getWorkspace[T]()
		blockedRegion(ws, tA, tB, dst, a, b, pb, m, k, n, acc, 0, m, 0, n)
		putWorkspace(ws)
		return
	}
	// About three chunks per goroutine, so the work evens out when one starts late.
	per := (tiles + 3*(h+1) - 1) / (3 * (h + 1))
	chunks := (tiles + per - 1) / per
	unreserve(h - min(h, chunks-1))
	h = min(h, chunks-1)
	var packed *[]T
	if splitRows && pb == nil && (tB || m >= packBRows) {
		// Every chunk of rows reads all of B, packed: pack it once, here, instead of in
		// each chunk (the MLP's ∇W1 = Xᵀ·dY at batch 64, TN 784×64×256, packed dY six times).
		packed = byType[T](&packedBs64, &packedBs32).Get().(*[]T)
		*packed = packSlivers(*packed, b, k, n, tB)
		pb = *packed
	}
	g := byType[T](&gemmTasks64, &gemmTasks32).Get().(*gemmTask[T])
	*g = gemmTask[T]{tA: tA, tB: tB, a: a, b: b, c: dst, pb: pb, packed: packed, m: m, k: k, n: n, acc: acc, splitRows: splitRows}
	if splitRows {
		g.step = per * mr
	} else {
		g.step = per * nr
	}
	run(h, chunks, g)
}

func (g *gemmTask[T]) runChunk(_, c int) {
	ws := getWorkspace[T]()
	lo := c * g.step
	if g.splitRows {
		blockedRegion(ws, g.tA, g.tB, g.c, g.a, g.b, g.pb, g.m, g.k, g.n, g.acc, lo, min(lo+g.step, g.m), 0, g.n)
	} else {
		blockedRegion(ws, g.tA, g.tB, g.c, g.a, g.b, g.pb, g.m, g.k, g.n, g.acc, 0, g.m, lo, min(lo+g.step, g.n))
	}
	putWorkspace(ws)
}

func (g *gemmTask[T]) release() {
	if g.packed != nil {
		byType[T](&packedBs64, &packedBs32).Put(g.packed)
	}
	*g = gemmTask[T]{}
	byType[T](&gemmTasks64, &gemmTasks32).Put(g)
}

// workspace holds one goroutine's packing buffers.
type workspace[T Float] struct {
	a, b []T
	tile [mr * nrMax]T
}

var (
	workspaces64 = sync.Pool{New: func() any { return new(workspace[float64]) }}
	workspaces32 = sync.Pool{New: func() any { return new(workspace[float32]) }}
)

func getWorkspace[T Float]() *workspace[T] {
	return byType[T](&workspaces64, &workspaces32).Get().(*workspace[T])
}

func putWorkspace[T Float](ws *workspace[T]) { byType[T](&workspaces64, &workspaces32).Put(ws) }

// evenBlock returns the block size ≤ max (a multiple of unit) that splits n into the fewest
// blocks of nearly equal size.
func evenBlock(n, max, unit int) int {
	if n <= 0 {
		return unit
	}
	blocks := (n + max - 1) / max
	b := (n + blocks - 1) / blocks
	return (b + unit - 1) / unit * unit
}

// blockedRegion computes rows [i0,i1) × columns [j0,j1) of C; j0 is a multiple of nr. With
// pb (all of op(B) in slivers, from packSlivers) b is not read.
func blockedRegion[T Float](ws *workspace[T], tA, tB bool, c, a, b, pb []T, m, k, n int, acc bool, i0, i1, j0, j1 int) {
	nr := nrOf[T]()
	kc := evenBlock(k, kcMax, 1)
	mc := evenBlock(i1-i0, mcMax, mr)
	nb := j1 - j0
	panels := (nb + nr - 1) / nr
	full := nb / nr // panels read in place when B is row-major
	np := (n + nr - 1) / nr
	for pc := 0; pc < k; pc += kc {
		kb := min(kc, k-pc)
		accBlock := acc || pc > 0
		// Pack the slivers of B that cannot be read in place (all of them when B is
		// transposed, only a partial last one otherwise), or all when C is tall.
		first := full
		if pb != nil {
			first = panels
		} else if tB || m >= packBRows {
			first = 0
		}
		ws.b = grow(ws.b, (panels-first)*kb*nr)
		for q := first; q < panels; q++ {
			packB(ws.b[(q-first)*kb*nr:(q-first+1)*kb*nr], tB, b, k, n, pc, kb, j0+q*nr, min(nr, j1-j0-q*nr))
		}
		for ic := i0; ic < i1; ic += mc {
			mb := min(mc, i1-ic)
			// A is read in place; only a last sliver of fewer than mr rows is copied out,
			// zero-padded, so the kernel never reads past A.
			full := mb / mr * mr
			if full < mb {
				ws.a = grow(ws.a, mr*kb)
				packA(ws.a, tA, a, m, k, ic+full, mb-full, pc, kb)
			}
			for q := 0; q < panels; q++ {
				jr := j0 + q*nr
				cols := min(nr, j1-jr)
				var bp *T
				ldb := nr
				if pb != nil {
					off := pc*np*nr + (jr/nr)*kb*nr
					bp = &pb[off : off+kb*nr][0]
				} else if q < first {
					off := pc*n + jr
					bp = &b[off : off+(kb-1)*n+nr][0]
					ldb = n
				} else {
					bp = &ws.b[(q-first)*kb*nr : (q-first+1)*kb*nr][0]
				}
				for ir := 0; ir < mb; ir += mr {
					rows := min(mr, mb-ir)
					var ap *T
					rsA, csA := 1, mr
					switch {
					case rows < mr:
						ap = &ws.a[0]
					case tA:
						off := pc*m + ic + ir
						ap, rsA, csA = &a[off : off+(kb-1)*m+mr][0], 1, m
					default:
						off := (ic+ir)*k + pc
						ap, rsA, csA = &a[off : off+(mr-1)*k+kb][0], k, 1
					}
					half := cols <= nr/2
					if rows == mr && (cols == nr || cols == nr/2) {
						off := (ic+ir)*n + jr
						microKernel(half, kb, ap, rsA, csA, bp, ldb, &c[off : off+(mr-1)*n+cols][0], n, accBlock)
						continue
					}
					microKernel(half, kb, ap, rsA, csA, bp, ldb, &ws.tile[0], nr, false)
					for r := 0; r < rows; r++ {
						dst := c[(ic+ir+r)*n+jr : (ic+ir+r)*n+jr+cols]
						src := ws.tile[r*nr : r*nr+cols]
						if accBlock {
							for j, v := range src {
								dst[j] += v
							}
						} else {
							copy(dst, src)
						}
					}
				}
			}
		}
	}
}

// packA stores rows [i0, i0+rows) × depth [p0, p0+kb) of op(A), rows < mr, as one kb×mr
// sliver with the mr values of a depth index adjacent, rows past the last zero.
func packA[T Float](dst []T, tA bool, a []T, m, k, i0, rows, p0, kb int) {
	dst = dst[:kb*mr]
	clear(dst)
	for r := 0; r < rows; r++ {
		if tA {
			// op(A)(i, p) = a[p·m + i]
			for p := 0; p < kb; p++ {
				dst[p*mr+r] = a[(p0+p)*m+i0+r]
			}
			continue
		}
		for p, v := range a[(i0+r)*k+p0 : (i0+r)*k+p0+kb] {
			dst[p*mr+r] = v
		}
	}
}

// packB stores depth [p0, p0+kb) × columns [j0, j0+cols) of op(B) as one kb×nr sliver,
// columns past cols zero.
func packB[T Float](dst []T, tB bool, b []T, k, n, p0, kb, j0, cols int) {
	nr := nrOf[T]()
	if tB {
		// op(B)(p, j) = b[j·k + p]: one contiguous run of kb values per column, four
		// columns at a time, so that each row of the sliver is written four adjacent
		// values at a time.
		c := 0
		for ; c+4 <= cols; c += 4 {
			s0 := b[(j0+c)*k+p0 : (j0+c)*k+p0+kb]
			s1 := b[(j0+c+1)*k+p0 : (j0+c+1)*k+p0+kb]
			s2 := b[(j0+c+2)*k+p0 : (j0+c+2)*k+p0+kb]
			s3 := b[(j0+c+3)*k+p0 : (j0+c+3)*k+p0+kb]
			for p, v := range s0 {
				d := dst[p*nr+c : p*nr+c+4 : p*nr+c+4]
				d[0], d[1], d[2], d[3] = v, s1[p], s2[p], s3[p]
			}
		}
		for ; c < cols; c++ {
			src := b[(j0+c)*k+p0 : (j0+c)*k+p0+kb]
			for p, v := range src {
				dst[p*nr+c] = v
			}
		}
		for c := cols; c < nr; c++ {
			for p := 0; p < kb; p++ {
				dst[p*nr+c] = 0
			}
		}
		return
	}
	for p := 0; p < kb; p++ {
		d := dst[p*nr : p*nr+nr]
		copy(d, b[(p0+p)*n+j0:(p0+p)*n+j0+cols])
		clear(d[cols:])
	}
}
