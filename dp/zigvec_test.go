package dp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// zigGroups (AVX-512 and AVX2 on amd64, each run) and zigGroupsGeneric do the same groups
// and add bit-identical values, on random words and on groups built to miss the fast path
// in each lane, through the layers with no fast path (1) and the tail strip (0), and at
// |j| = 2^31; odd and even numbers of groups.
func TestZigGroupsMatchGeneric(t *testing.T) {
	for _, k := range zigKernels() {
		t.Run(k.name, func(t *testing.T) {
			defer k.use()()
			testZigGroupsMatchGeneric(t)
		})
	}
}

// zigKernel is a fast-path kernel zigGroups can be made to run: the AVX-512 one (wide) or
// the AVX2 one (the generic code where there is no vector kernel).
type zigKernel struct {
	name string
	wide bool
}

// zigKernels returns the kernels this machine runs, widest first.
func zigKernels() []zigKernel {
	if useAVX512 {
		return []zigKernel{{"avx512", true}, {"avx2", false}}
	}
	return []zigKernel{{"avx2", false}}
}

// use makes zigGroups run k until the function it returns is called.
func (k zigKernel) use() (restore func()) {
	was := useAVX512
	useAVX512 = k.wide
	return func() { useAVX512 = was }
}

func testZigGroupsMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(name string, buf []uint64, ndst int) []uint32 {
		t.Helper()
		a, b := make([]float64, ndst), make([]float64, ndst)
		for i := range a {
			a[i] = r.NormFloat64()
			if i%13 == 0 {
				a[i] = math.Copysign(0, -1) // kept bit for bit in refused lanes
			}
			b[i] = a[i]
		}
		std := 0.3 + r.Float64()
		ra := zigGroups(a, buf, std, nil)
		rb := zigGroupsGeneric(b, buf, std, make([]uint32, 3))
		if !slices.Equal(ra, rb) {
			t.Fatalf("%s: refused %x, the generic code %x", name, ra, rb)
		}
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
				t.Fatalf("%s: value %d: %v, the generic code %v", name, i, a[i], b[i])
			}
		}
		return ra
	}
	for trial := range 2000 {
		groups := 1 + r.IntN(40)
		buf := make([]uint64, groupWords*groups)
		for i := range buf {
			buf[i] = r.Uint64()
		}
		check("random", buf, 8*groups)
		// The same words with one lane of a random group forced off the fast path.
		g, l := r.IntN(groups), r.IntN(8)
		w := (*[groupWords]uint64)(buf[groupWords*g:])
		setLane := func(j uint32, layer uint64) {
			w[l>>1] = w[l>>1]&^(0xFFFFFFFF<<(32*(l&1))) | uint64(j)<<(32*(l&1))
			w[4] = w[4]&^(0xFF<<(8*l)) | layer<<(8*l)
		}
		switch trial % 4 {
		case 0:
			setLane(uint32(r.Uint32()), 1) // layer 1 has no fast path
		case 1:
			setLane(0x80000000, uint64(r.IntN(128))) // |MinInt32| = 2^31 ≥ every K
		case 2:
			i := 2 + r.IntN(126)             // exactly at K: |j| < K fails
			setLane(zigK[i], uint64(i)|0x80) // the layer byte's high bit is ignored
		case 3:
			i := 2 + r.IntN(126) // just inside K, negative
			setLane(uint32(-int32(zigK[i]-1)), uint64(i))
		}
		refused := check("forced", buf, 8*groups)
		lane := false
		for _, e := range refused {
			lane = lane || (int(e>>8) == g && e>>l&1 == 1)
		}
		if want := trial%4 != 3; lane != want {
			t.Fatalf("trial %d: lane %d of group %d refused = %v, want %v (%x)", trial, l, g, lane, want, refused)
		}
	}
}

// The vector kernels against the generic code with refusal masks chosen per group
// (none, all eight, random: so pairs with all sixteen lanes refused), every layer at its
// boundary in every one of the sixteen lane positions, canaries after dst and after
// refused's n entries, and -0, NaN and Inf destinations.
func TestZigGroupsMasks(t *testing.T) {
	for _, k := range zigKernels() {
		t.Run(k.name, func(t *testing.T) {
			defer k.use()()
			wide := k.wide
			r := rand.New(rand.NewPCG(9, uint64(len(t.Name()))))
			setLane := func(w *[groupWords]uint64, l int, j uint32, layer uint64) {
				w[l>>1] = w[l>>1]&^(0xFFFFFFFF<<(32*(l&1))) | uint64(j)<<(32*(l&1))
				w[4] = w[4]&^(0xFF<<(8*l)) | layer<<(8*l)
			}
			run := func(name string, buf []uint64) {
				groups := len(buf) / groupWords
				const canary = 0x5a5a5a5a
				a := make([]float64, 8*groups+8)
				for i := range a {
					switch r.IntN(6) {
					case 0:
						a[i] = math.Copysign(0, -1)
					case 1:
						a[i] = math.NaN()
					case 2:
						a[i] = math.Inf(-1)
					default:
						a[i] = r.NormFloat64()
					}
				}
				b := append([]float64(nil), a...)
				std := 0.3 + r.Float64()
				ref := make([]uint32, groups, groups+8)
				for i := groups; i < groups+8; i++ {
					ref[:groups+8][i] = canary
				}
				ra := zigGroups(a[:8*groups], buf, std, ref)
				rb := zigGroupsGeneric(b[:8*groups], buf, std, nil)
				if !slices.Equal(ra, rb) {
					t.Fatalf("%s wide=%v: refused %x, generic %x", name, wide, ra, rb)
				}
				for i := groups; i < groups+8; i++ {
					if ref[:groups+8][i] != canary {
						t.Fatalf("%s wide=%v: refused written at %d ≥ n = %d", name, wide, i, groups)
					}
				}
				for i := range a {
					if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
						t.Fatalf("%s wide=%v: value %d (of %d+8): %v, generic %v", name, wide, i, 8*groups, a[i], b[i])
					}
				}
			}
			for range 3000 {
				groups := 1 + r.IntN(12)
				buf := make([]uint64, groupWords*groups+3) // a partial group after: ignored
				for i := range buf {
					buf[i] = r.Uint64()
				}
				for g := range groups {
					w := (*[groupWords]uint64)(buf[groupWords*g:])
					var mask uint32
					switch r.IntN(4) {
					case 0:
						mask = 0
					case 1:
						mask = 0xFF
					default:
						mask = r.Uint32() & 0xFF
					}
					for l := range 8 {
						layer := uint64(r.IntN(128))
						k := zigK[layer]
						if mask>>l&1 == 1 {
							j := k + uint32(r.Uint64N(uint64(1<<31-k)+1)) // |j| in [K, 2^31]
							if r.IntN(2) == 0 {
								j = -j
							}
							setLane(w, l, j, layer|uint64(r.IntN(2))<<7)
						} else if k > 0 {
							j := uint32(r.IntN(int(k))) // |j| < K
							if r.IntN(2) == 0 {
								j = -j
							}
							setLane(w, l, j, layer)
						}
					}
				}
				run("masks", buf)
			}
			// Every layer at its boundary in each of the sixteen lanes of a pair.
			for layer := range 128 {
				for lane := range 16 {
					for _, d := range []int64{-1, 0} {
						buf := make([]uint64, groupWords*2)
						for i := range buf {
							buf[i] = r.Uint64()
						}
						w := (*[groupWords]uint64)(buf[groupWords*(lane/8):])
						j := int64(zigK[layer]) + d
						if j < 0 {
							continue
						}
						setLane(w, lane%8, uint32(j), uint64(layer))
						run("boundary", buf)
						setLane(w, lane%8, uint32(-j), uint64(layer))
						run("boundary-", buf)
					}
				}
			}
		})
	}
}

// refAddNormals is addNormals written plainly from the layout zigvec.go and finishSlow
// document: in batches of the groups left in main's buffer (or in dst), each group's five
// words from main, the lanes in order; each lane that misses the fast path takes a word of
// spare for its level and is kept unless the squeeze accepts it; after the batch, the kept
// ones in order finish as zigSlow does (the exponential's test for the unsure, a fresh
// word of spare for the rejected, their own word for the tail's); the last len(dst) mod 8
// draws one at a time from main.
func refAddNormals(g *gaussStream, dst []float64, std float64) {
	s := g.main
	k := 0
	for k+8 <= len(dst) {
		if s.pos > streamWords-groupWords {
			s.refill()
		}
		batch := min((len(dst)-k)/8, (streamWords-s.pos)/groupWords)
		var later []func()
		for range batch {
			w := (*[groupWords]uint64)(s.buf[s.pos:])
			for l := range 8 {
				at, u := k+l, groupWord(w, l)
				z, ok := zigFast(u)
				if ok {
					dst[at] += float64(std * z)
					continue
				}
				i := u >> 32 & 0x7F
				level := g.spare.Uint64() // taken by every refused lane, used unless in the tail
				if i == 0 {
					later = append(later, func() { dst[at] += float64(std * zigSlow(u, g.spare)) })
					continue
				}
				x := float64(int32(u)) * float64(zigW[i])
				lv := zigF[i] + float32(unitFloat(level))*(zigF[i-1]-zigF[i])
				accept, sure := zigSqueeze[i].test(math.Abs(x), float64(lv))
				switch {
				case sure && accept:
					dst[at] += float64(std * x)
				case sure:
					later = append(later, func() { dst[at] += float64(std * zigSlow(g.spare.Uint64(), g.spare)) })
				default:
					later = append(later, func() {
						if lv < float32(math.Exp(-.5*x*x)) {
							dst[at] += float64(std * x)
						} else {
							dst[at] += float64(std * zigSlow(g.spare.Uint64(), g.spare))
						}
					})
				}
			}
			s.pos += groupWords
			k += 8
		}
		for _, f := range later {
			f()
		}
	}
	for ; k < len(dst); k++ {
		dst[k] += std * s.normal()
	}
}

// keyedGaussStream returns a gauss stream whose two streams are keyed from seed.
func keyedGaussStream(t *testing.T, seed [32]byte) *gaussStream {
	g := &gaussStream{main: &secureStream{pos: streamWords}, spare: &secureStream{pos: streamWords}}
	s1, s2 := seed, seed
	s2[31] ^= 1
	if err := g.main.setKey(&s1); err != nil {
		t.Fatal(err)
	}
	if err := g.spare.setKey(&s2); err != nil {
		t.Fatal(err)
	}
	return g
}

// addNormals (vector fast path, refused lanes, refills) draws exactly what the plain
// reference draws from the same keystreams, over lengths that end mid-group and cross many
// refills.
func TestAddNormalsMatchesReference(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 1000, 3277, 100_003} {
		var seed [32]byte
		seed[0], seed[1] = byte(n), byte(n>>8)
		a, b := keyedGaussStream(t, seed), keyedGaussStream(t, seed)
		x, y := make([]float64, n), make([]float64, n)
		for round := range 3 { // successive fills continue the streams
			a.addNormals(x, 0.5)
			refAddNormals(b, y, 0.5)
			for i := range x {
				if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
					t.Fatalf("n = %d, fill %d, value %d: %v, the reference %v", n, round, i, x[i], y[i])
				}
			}
			for _, p := range [][2]*secureStream{{a.main, b.main}, {a.spare, b.spare}} {
				if p[0].pos != p[1].pos || p[0].words != p[1].words {
					t.Fatalf("n = %d, fill %d: a stream at word %d/%d, the reference's at %d/%d", n, round, p[0].pos, p[0].words, p[1].pos, p[1].words)
				}
			}
		}
	}
}

// BenchmarkZigGroups times the kernels on one buffer's groups (refused lanes left out).
func BenchmarkZigGroups(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]uint64, groupWords*(streamWords/groupWords))
	for i := range buf {
		buf[i] = r.Uint64()
	}
	dst := make([]float64, 8*(streamWords/groupWords))
	var refused []uint32
	for _, impl := range []struct {
		name string
		f    func([]float64, []uint64, float64, []uint32) []uint32
	}{{"vector", zigGroups}, {"avx2", func(d []float64, buf []uint64, std float64, r []uint32) []uint32 {
		defer zigKernel{"avx2", false}.use()()
		return zigGroups(d, buf, std, r)
	}}, {"generic", zigGroupsGeneric}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				refused = impl.f(dst, buf, 1, refused)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dst)), "ns/draw")
		})
	}
}

// BenchmarkAddNormals times one stream's fill of the float32 MLP's 235,146 parameters (as
// a DP-SGD step draws them), on one goroutine: the keystream, the vector kernel (AVX-512
// where there is one, and AVX2) and the slow path together.
func BenchmarkAddNormals(b *testing.B) {
	g, err := newGaussStream()
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float64, 235146)
	for _, k := range zigKernels() {
		b.Run(k.name, func(b *testing.B) {
			defer k.use()()
			for b.Loop() {
				g.addNormals(dst, 1)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dst)), "ns/draw")
		})
	}
}
