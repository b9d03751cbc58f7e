package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// naive returns op(a)·op(b) by the triple loop in float64, and Σ_p |op(a)_ip·op(b)_pj|, the
// scale of each element's rounding error.
func naive(ta, tb bool, a, b []float64, m, k, n int) (prod, mag []float64) {
	prod, mag = make([]float64, m*n), make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s, abs := 0.0, 0.0
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if ta {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if tb {
					bv = b[j*k+p]
				}
				s += av * bv
				abs += math.Abs(av * bv)
			}
			prod[i*n+j], mag[i*n+j] = s, abs
		}
	}
	return prod, mag
}

func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.NormFloat64()
	}
	return s
}

// randT is randSlice rounded to T.
func randT[T Float](r *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(r.NormFloat64())
	}
	return s
}

func to64[T Float](s []T) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

// eps is T's machine epsilon, the spacing of its values above 1.
func eps[T Float]() float64 { return byType[T](0x1p-52, 0x1p-23) }

// typeName is the name of T in test and benchmark names.
func typeName[T Float]() string { return byType[T]("float64", "float32") }

// backends lists the multiply implementations available on this machine.
// "fast" is the blocked multiply with the CPU's widest kernels, "ymm" the same with the
// AVX2 ones where the CPU also has AVX-512.
func backends() []string {
	switch {
	case gemmFast != nil && gemmFast32 != nil && hasWide:
		return []string{"fast", "ymm", "gonum"}
	case gemmFast != nil && gemmFast32 != nil:
		return []string{"fast", "gonum"}
	}
	return []string{"gonum"}
}

func withBackend(name string, workers int, f func()) {
	oldFast, oldFast32, oldWide, oldW := useFast, useFast32, wide, Workers
	fast := name == "fast" || name == "ymm"
	useFast, useFast32, wide = fast, fast, hasWide && name == "fast"
	Workers = workers
	defer func() { useFast, useFast32, wide, Workers = oldFast, oldFast32, oldWide, oldW }()
	f()
}

// forms are the products checked: the three transpose forms and PackedB of b and bᵀ.
var forms = []string{"NN", "NT", "TN", "PN", "PT"}

// gemmCase is one product to check: random operands and the naive result.
type gemmCase[T Float] struct {
	form      string
	m, k, n   int
	a, b      []T
	want, mag []float64 // op(a)·op(b) in float64 by the naive loop, and its scale
}

func newGemmCase[T Float](form string, m, k, n int) *gemmCase[T] {
	r := rand.New(rand.NewPCG(uint64(m*1000003+k*1009+n), 7))
	c := &gemmCase[T]{form: form, m: m, k: k, n: n, a: randT[T](r, m*k), b: randT[T](r, k*n)}
	c.want, c.mag = naive(form == "TN", form == "NT" || form == "PT", to64(c.a), to64(c.b), m, k, n)
	return c
}

// mul sets dst to the case's product, or adds it when acc.
func (c *gemmCase[T]) mul(dst []T, acc bool) {
	m, k, n := c.m, c.k, c.n
	switch c.form {
	case "NN":
		MulNN(dst, c.a, c.b, m, k, n, acc)
	case "NT":
		MulNT(dst, c.a, c.b, m, k, n, acc)
	case "TN":
		MulTN(dst, c.a, c.b, m, k, n, acc)
	case "PN", "PT": // PackedB of b (k×n) or bᵀ (b n×k)
		var p PackedB[T]
		p.Pack(c.b, k, n, c.form == "PT")
		MulPacked(dst, c.a, m, &p, acc)
	}
}

// check multiplies into a random destination with a guard band on both sides and compares
// with the naive result.
func (c *gemmCase[T]) check(t *testing.T, acc bool) {
	t.Helper()
	m, k, n := c.m, c.k, c.n
	r := rand.New(rand.NewPCG(uint64(m+k+n), 9))
	const guard = 5
	buf := randT[T](r, m*n+2*guard)
	init := append([]T(nil), buf...)
	dst := buf[guard : guard+m*n]
	c.mul(dst, acc)
	for i, w := range c.want {
		scale := c.mag[i]
		if acc {
			w += float64(init[guard+i])
			scale += math.Abs(float64(init[guard+i]))
		}
		// Higham, Accuracy and Stability of Numerical Algorithms (2002), eq. 3.5: a sum of
		// k products in any order is within γ_k·Σ|a_ip·b_pj| ≈ k·eps/2·Σ|a_ip·b_pj| of the exact
		// value, and the float64 reference is closer still; one more rounding when acc.
		got := float64(dst[i])
		if d := math.Abs(got - w); d > float64(k+2)*eps[T]()*scale || math.IsNaN(got) {
			t.Fatalf("%s %dx%dx%d acc=%v: element (%d,%d): got %v want %v", c.form, m, k, n, acc, i/n, i%n, got, w)
		}
	}
	for i := 0; i < guard; i++ {
		if buf[i] != init[i] || buf[guard+m*n+i] != init[guard+m*n+i] {
			t.Fatalf("%s %dx%dx%d: wrote outside dst", c.form, m, k, n)
		}
	}
}

func TestGemmMatchesNaive(t *testing.T) {
	t.Run("float64", testGemmMatchesNaive[float64])
	t.Run("float32", testGemmMatchesNaive[float32])
}

func testGemmMatchesNaive[T Float](t *testing.T) {
	shapes := [][3]int{
		{1, 1, 1}, {3, 5, 7}, {17, 33, 19}, {70, 9, 130}, {2, 0, 3}, {128, 64, 10},
		// tile edges (mr = 6, nr = 8 for float64 and 16 for float32, twice that with zmm), block edges (kc = 256,
		// mc = 96), B packed for tall C (m ≥ 512), and splits across workers (m·k·n ≥ 2^19)
		// by columns (40×600×200, 32×128×512) and by rows (193×513×17, 600×40×100)
		{6, 8, 8}, {7, 9, 9}, {12, 16, 16}, {6, 8, 16}, {7, 9, 17}, {13, 5, 33}, {5, 300, 7}, {97, 257, 41},
		{193, 513, 17}, {40, 600, 200}, {32, 128, 512}, {520, 8, 100}, {600, 40, 100}, {200, 3, 1},
		{1, 700, 300}, {300, 700, 1},
	}
	for _, s := range shapes {
		for _, form := range forms {
			c := newGemmCase[T](form, s[0], s[1], s[2])
			for _, backend := range backends() {
				for _, workers := range []int{1, 2, 3} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("%s/w%d/%s/%dx%dx%d/acc=%v", backend, workers, form, s[0], s[1], s[2], acc)
						t.Run(name, func(t *testing.T) {
							withBackend(backend, workers, func() { c.check(t, acc) })
						})
					}
				}
			}
		}
	}
}

// TestGemmOddShapes sweeps every small shape, so each tile and sliver edge case of the
// blocked kernel meets each transpose form.
func TestGemmOddShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive sweep")
	}
	t.Run("float64", testGemmOddShapes[float64])
	t.Run("float32", testGemmOddShapes[float32])
}

func testGemmOddShapes[T Float](t *testing.T) {
	for _, backend := range backends() {
		withBackend(backend, 2, func() {
			for m := 1; m <= 14; m++ {
				for n := 1; n <= 66; n++ { // up to two float32 zmm tiles and two columns
					for _, k := range []int{1, 2, 3, 4, 5, 9, 31} {
						for _, form := range forms {
							c := newGemmCase[T](form, m, k, n)
							c.check(t, false)
							c.check(t, true)
						}
					}
				}
			}
		})
	}
}

// TestGemmHalfTiles checks that the last columns of C, computed by the half-width kernel
// when no more than half a tile is left, equal bit for bit what the full kernel computes for
// them when more columns follow: a value does not depend on n.
func TestGemmHalfTiles(t *testing.T) {
	t.Run("float64", testGemmHalfTiles[float64])
	t.Run("float32", testGemmHalfTiles[float32])
}

func testGemmHalfTiles[T Float](t *testing.T) {
	if gemmFast == nil {
		t.Skip("no fast backend")
	}
	for _, backend := range backends() {
		if backend == "gonum" {
			continue
		}
		nr := byType[T](8, 16) // the fast backend's tile width, doubled by the zmm kernels
		if backend == "fast" && hasWide {
			nr *= 2
		}
		r := rand.New(rand.NewPCG(11, 12))
		const m, k = 13, 300
		for _, n := range []int{nr / 2, nr + 3, nr + nr/2} {
			cols := n + nr
			a, b := randT[T](r, m*k), randT[T](r, k*cols)
			narrowB := make([]T, k*n)
			for p := 0; p < k; p++ {
				copy(narrowB[p*n:(p+1)*n], b[p*cols:p*cols+n])
			}
			for _, acc := range []bool{false, true} {
				got, full := randT[T](r, m*n), randT[T](r, m*cols)
				for i := 0; i < m; i++ {
					copy(full[i*cols:i*cols+n], got[i*n:(i+1)*n])
				}
				withBackend(backend, 1, func() {
					MulNN(got, a, narrowB, m, k, n, acc)
					MulNN(full, a, b, m, k, cols, acc)
				})
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						if got[i*n+j] != full[i*cols+j] {
							t.Fatalf("%s n=%d acc=%v: (%d,%d) = %v, %v with %d columns", backend, n, acc, i, j, got[i*n+j], full[i*cols+j], cols)
						}
					}
				}
			}
		}
	}
}

// TestGemmWideMatchesYmm checks that the AVX-512 kernels give the AVX2 kernels' results bit
// for bit (each element is the same chain of fused multiply-adds), across tile, half-tile
// and block edges of both widths, in every transpose form.
func TestGemmWideMatchesYmm(t *testing.T) {
	if !hasWide {
		t.Skip("no AVX-512")
	}
	t.Run("float64", testGemmWideMatchesYmm[float64])
	t.Run("float32", testGemmWideMatchesYmm[float32])
}

func testGemmWideMatchesYmm[T Float](t *testing.T) {
	shapes := [][3]int{
		{1, 1, 1}, {6, 8, 8}, {7, 9, 9}, {13, 5, 33}, {12, 16, 16}, {6, 8, 31}, {6, 8, 32}, {11, 40, 47},
		{5, 300, 65}, {97, 257, 41}, {64, 784, 256}, {784, 64, 256}, {64, 256, 128}, {64, 128, 10},
		{193, 513, 17}, {40, 600, 200}, {520, 8, 100},
	}
	for _, s := range shapes {
		for _, form := range forms {
			c := newGemmCase[T](form, s[0], s[1], s[2])
			for _, acc := range []bool{false, true} {
				init := randT[T](rand.New(rand.NewPCG(3, 4)), s[0]*s[2])
				var got [2][]T
				for i, backend := range []string{"fast", "ymm"} {
					got[i] = append([]T(nil), init...)
					withBackend(backend, 2, func() { c.mul(got[i], acc) })
				}
				for i := range got[0] {
					if got[0][i] != got[1][i] {
						t.Fatalf("%s %dx%dx%d acc=%v: element %d is %v with zmm, %v with ymm", form, s[0], s[1], s[2], acc, i, got[0][i], got[1][i])
					}
				}
			}
		}
	}
}

func TestTranspose(t *testing.T) {
	t.Run("float64", testTranspose[float64])
	t.Run("float32", testTranspose[float32])
}

func testTranspose[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, s := range [][2]int{{1, 1}, {3, 70}, {65, 33}} {
		src := randT[T](r, s[0]*s[1])
		dst := make([]T, len(src))
		Transpose(dst, src, s[0], s[1])
		for i := 0; i < s[0]; i++ {
			for j := 0; j < s[1]; j++ {
				if dst[j*s[0]+i] != src[i*s[1]+j] {
					t.Fatalf("%v: (%d,%d) wrong", s, i, j)
				}
			}
		}
	}
}

// TestParallelFor checks that every index is visited once, with worker indices in range,
// also when the parts multiply matrices themselves (nested use must not deadlock), and that
// every helper is idle again afterwards.
func TestParallelFor(t *testing.T) {
	defer setWorkers(3)()
	for _, n := range []int{1, 2, 5, 100} {
		hits := make([]int, n)
		ParallelFor(n, 1<<20, func(w, lo, hi int) {
			if w < 0 || w >= Workers {
				t.Errorf("worker %d out of range", w)
			}
			for i := lo; i < hi; i++ {
				hits[i]++
				a, b, c := make([]float64, 64*64), make([]float64, 64*64), make([]float64, 64*64)
				MulNN(c, a, b, 64, 64, 64, false)
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, h)
			}
		}
	}
	// A helper that found no chunk left may still be on its way back to idle: give it the
	// processor until it is, or until a deadline that only a leaked reservation hits.
	helpersMu.Lock()
	started := helpers
	helpersMu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); int(idle.Load()) != started; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d helpers idle after all tasks finished: a reservation leaked", idle.Load(), started)
		}
	}
}

// The shapes of the reference models' training steps: MLP 784-256-128-10 at batch 64
// (forward, input gradient, weight gradient), the LSTM (input projection, recurrent step,
// weight gradients) and the Transformer (projections of 2048 rows, attention heads).
var benchShapes = []struct {
	form    string
	m, k, n int
}{
	{"NN", 64, 784, 256}, {"NN", 64, 256, 128}, {"NT", 64, 256, 784}, {"NT", 64, 128, 256}, {"TN", 784, 64, 256},
	{"NN", 2560, 8, 512}, {"NN", 32, 128, 512}, {"NN", 16, 128, 512}, {"PN", 16, 128, 512}, {"NN", 32, 512, 128}, {"NN", 16, 512, 128}, {"PT", 16, 512, 128}, {"TN", 128, 2560, 512}, {"NT", 2560, 512, 8},
	{"NN", 2048, 64, 64}, {"NN", 2048, 64, 192}, {"NN", 2048, 64, 128}, {"NN", 2048, 128, 64},
	{"TN", 64, 2048, 192}, {"NT", 2048, 192, 64}, {"NN", 64, 16, 64}, {"NN", 64, 64, 16},
	{"NN", 256, 256, 256},
}

// BenchmarkGemm runs each shape in float64 and float32 side by side (…/float64, …/float32).
func BenchmarkGemm(b *testing.B) {
	for _, s := range benchShapes {
		for _, backend := range backends() {
			for _, workers := range []int{1, 2} {
				name := fmt.Sprintf("%s/%s/%dx%dx%d/w%d", backend, s.form, s.m, s.k, s.n, workers)
				b.Run(name+"/"+typeName[float64](), func(b *testing.B) { benchGemm[float64](b, backend, workers, s.form, s.m, s.k, s.n) })
				b.Run(name+"/"+typeName[float32](), func(b *testing.B) { benchGemm[float32](b, backend, workers, s.form, s.m, s.k, s.n) })
			}
		}
	}
}

func benchGemm[T Float](b *testing.B, backend string, workers int, form string, m, k, n int) {
	withBackend(backend, workers, func() {
		r := rand.New(rand.NewPCG(1, 2))
		x, y, d := randT[T](r, m*k), randT[T](r, k*n), make([]T, m*n)
		var p PackedB[T]
		p.Pack(y, k, n, form == "PT")
		b.ReportAllocs()
		b.ResetTimer()
		c0 := cpuTime()
		for i := 0; i < b.N; i++ {
			switch form {
			case "NN":
				MulNN(d, x, y, m, k, n, false)
			case "NT":
				MulNT(d, x, y, m, k, n, false)
			case "TN":
				MulTN(d, x, y, m, k, n, false)
			case "PN", "PT":
				MulPacked(d, x, m, &p, false)
			}
		}
		flop := float64(2*m*k*n) * float64(b.N)
		b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		// CPU time is steadier than wall time on a shared machine.
		b.ReportMetric(flop/(cpuTime()-c0).Seconds()/1e9, "GFLOP/cpu-s")
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestHelperIdleWhenRegionReturns checks that the helpers are free again by the time the
// parallel region they worked on returns, so that the caller's next multiply (a training
// step issues them back to back) finds them: a helper that reported its last chunk done
// before it counted itself idle left that multiply to run on the caller alone.
func TestHelperIdleWhenRegionReturns(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two processors")
	}
	defer setWorkers(Workers)()
	busy := func(d time.Duration) {
		for start := time.Now(); time.Since(start) < d; {
		}
	}
	// One helper (other tests may have started more), started and settled, sleeping
	// rather than yielding: a goroutine that yields waits in the global queue, where a
	// helper polling for work on this processor could keep it while the other one sleeps.
	stopHelpers(t)
	Workers = 2
	ParallelForChunks(2, MinParallelFor, 1, func(int, int, int) {})
	const started = 1
	for deadline := time.Now().Add(5 * time.Second); idle.Load() < started && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	// The caller's chunk is short and the helper's long, so that the helper reports the
	// region's last chunk done.
	missed, helped := 0, 0
	const regions = 2000
	ran := make([]atomic.Bool, Workers)
	for range regions {
		for w := range ran {
			ran[w].Store(false)
		}
		ParallelForChunks(Workers, MinParallelFor, 1, func(w, _, _ int) {
			ran[w].Store(true)
			if w > 0 {
				busy(30 * time.Microsecond)
			} else {
				busy(5 * time.Microsecond)
			}
		})
		all := true
		for w := 1; w < Workers; w++ {
			all = all && ran[w].Load()
		}
		if !all {
			continue // the helper came too late (its first job, or a busy machine)
		}
		helped++
		if got := int(idle.Load()); got != started {
			if missed == 0 {
				t.Logf("first miss: %d of %d helpers idle", got, started)
			}
			missed++
		}
	}
	t.Logf("the helper took a chunk in %d of %d regions", helped, regions)
	if helped < regions/10 {
		t.Skipf("the helper took a chunk in only %d of %d regions (a busy machine)", helped, regions)
	}
	if missed > 0 {
		t.Errorf("after %d of %d parallel regions the helper took part in, it was not yet idle when the region returned", missed, helped)
	}
}

// stopHelpers ends every helper goroutine once it is idle, for a test that needs to know
// how many there are (the pool starts Workers − 1 again when next asked).
func stopHelpers(t *testing.T) {
	t.Helper()
	defer setWorkers(1)() // reserve starts none
	helpersMu.Lock()
	defer helpersMu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); int(idle.Load()) < helpers; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d helpers idle after 5 s", idle.Load(), helpers)
		}
	}
	if got := reserve(helpers); got != helpers {
		t.Fatalf("reserved %d of %d idle helpers", got, helpers)
	}
	for ; helpers > 0; helpers-- {
		jobs <- job{}
	}
}

// BenchmarkParallelForHandoff is one parallel region of two chunks, back to back as a
// training step runs hundreds of: serial on one worker; block, two workers whose helper
// blocks as soon as it has finished (spinWait 0, the pool before it polled); poll, two
// workers as the pool runs. The wall time falls towards half the serial time when the
// helper takes its chunk at once, and stays at the serial time or above when it wakes too
// late. Measured here (ns/op, fma 65,536 and 262,144): serial 5,300 and 26,600, block 5,700
// and 30,000–31,000, poll 3,000 and 12,800.
func BenchmarkParallelForHandoff(b *testing.B) {
	poll := spinWait
	defer func() { spinWait = poll }()
	for _, mode := range []struct {
		name    string
		workers int
		spin    time.Duration
	}{{"serial", 1, poll}, {"block", 2, 0}, {"poll", 2, poll}} {
		for _, n := range []int{1 << 13, 1 << 15, 1 << 17} {
			b.Run(fmt.Sprintf("%s/fma%d", mode.name, 2*n), func(b *testing.B) {
				defer setWorkers(mode.workers)()
				spinWait = mode.spin
				x := make([]float64, 2*n)
				for i := range x {
					x[i] = float64(i)
				}
				var sink [2]float64
				f := func(w, lo, hi int) {
					for c := lo; c < hi; c++ {
						sink[w] += Dot(x[c*n:(c+1)*n], x[c*n:(c+1)*n])
					}
				}
				c0 := cpuTime()
				for i := 0; i < b.N; i++ {
					ParallelForChunks(2, MinParallelFor, 1, f)
				}
				b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
