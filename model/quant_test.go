package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/internal/linalg"
)

// compressionInput is a batch for a model of compressionSpecs: dense rows or token
// sequences with a padded example.
func compressionInput(spec Spec, B int, rng *rand.Rand) *Input {
	if !spec.IsSequence() {
		in := &Input{X: make([]float64, B*spec.Input), B: B}
		for i := range in.X {
			in.X[i] = rng.NormFloat64()
		}
		return in
	}
	T := 5
	in := &Input{Tokens: make([]int32, B*T), B: B, T: T, Lengths: make([]int32, B)}
	for i := range B {
		in.Lengths[i] = int32(T - i%3)
		for t := range int(in.Lengths[i]) {
			in.Tokens[i*T+t] = int32(rng.IntN(spec.Vocab))
		}
	}
	return in
}

// Quantize stores every weight as scale·value with value in [−127, 127], scale the
// channel's max|w|/127; the parameter vector holds the dequantised weights and nothing
// else changes.
func TestQuantizeWeights(t *testing.T) {
	for name, spec := range compressionSpecs {
		t.Run(name, func(t *testing.T) {
			m, err := New(spec, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			before := slices.Clone(m.Params)
			if err := m.Quantize(QuantizeOptions{}); err != nil {
				t.Fatal(err)
			}
			q := m.Quantization()
			if m.Precision() != PrecisionInt8 || q.Activations != ActivationsDynamic || len(q.Tensors) != len(m.WeightTensors()) {
				t.Fatalf("precision %s, activations %s, %d tensors", m.Precision(), q.Activations, len(q.Tensors))
			}
			covered := make([]bool, len(m.Params))
			for _, qt := range q.Tensors {
				for k, v := range qt.Values {
					r, c := k/qt.Cols, k%qt.Cols
					ch := c
					if qt.ChannelRows {
						ch = r
					}
					i := qt.Offset + k
					covered[i] = true
					s := float64(qt.Scales[ch])
					if v < -127 || m.Params[i] != float64(v)*s || math.Abs(before[i]-m.Params[i]) > s/2*(1+1e-6) {
						t.Fatalf("%s value %d: %d·%v = %v, was %v", qt.Name, k, v, s, m.Params[i], before[i])
					}
				}
				for ch, s := range qt.Scales {
					if mx := channelMax(before, qt, ch); math.Abs(float64(s)-mx/127) > 1e-6*mx {
						t.Fatalf("%s channel %d: scale %v, max|w| %v", qt.Name, ch, s, mx)
					}
				}
			}
			for i, c := range covered {
				if !c && m.Params[i] != before[i] {
					t.Fatalf("parameter %d outside the weight tensors changed", i)
				}
			}
			if err := m.Quantize(QuantizeOptions{}); err == nil {
				t.Fatal("a quantised model was quantised again")
			}
			if err := m.Prune(0.5, PruneGlobal); err == nil {
				t.Fatal("a quantised model was pruned")
			}
		})
	}
}

func channelMax(w []float64, t QuantizedTensor, ch int) float64 {
	mx := 0.0
	for k := range t.Size() {
		r, c := k/t.Cols, k%t.Cols
		if (t.ChannelRows && r == ch) || (!t.ChannelRows && c == ch) {
			mx = max(mx, math.Abs(w[t.Offset+k]))
		}
	}
	return mx
}

// The int8 forward pass of an MLP is the integer arithmetic it claims: each layer's input
// rows quantised to their max|x|/127, products summed exactly, scaled, plus the bias.
func TestQuantizedMLPForwardIsTheIntegerArithmetic(t *testing.T) {
	spec := Spec{Type: TypeMLP, Input: 37, Hidden: []int{19, 11}, Output: 5}
	m, err := New(spec, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Quantize(QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	in := compressionInput(spec, 7, rand.New(rand.NewPCG(5, 6)))
	out, err := m.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	x := slices.Clone(in.X)
	width := spec.Input
	for li, qt := range m.Quantization().Tensors {
		n := qt.Cols
		bias := m.Params[qt.Offset+qt.Size() : qt.Offset+qt.Size()+n]
		y := make([]float64, in.B*n)
		for i := range in.B {
			row := x[i*width : (i+1)*width]
			mx := 0.0
			for _, v := range row {
				mx = max(mx, math.Abs(v))
			}
			s := mx / 127
			for j := range n {
				var acc int64
				for p, v := range row {
					acc += int64(math.Round(v/s)) * int64(qt.Values[p*n+j])
				}
				y[i*n+j] = s*float64(qt.Scales[j])*float64(acc) + bias[j]
				if li < 2 {
					y[i*n+j] = max(y[i*n+j], 0)
				}
			}
		}
		x, width = y, n
	}
	for k, v := range out.Data {
		if math.Abs(v-x[k]) > 1e-12*(1+math.Abs(x[k])) {
			t.Fatalf("output %d = %v, the integer arithmetic gives %v", k, v, x[k])
		}
	}
}

// The int8 forward pass stays close to the float64 pass of the same (dequantised)
// weights, for every kind of model, and a file round trip, a clone and static
// (calibrated) activations keep it so; the file is version 3 and Load gives bit-identical
// outputs.
func TestQuantizedForwardCloseToFloat(t *testing.T) {
	for name, spec := range compressionSpecs {
		for _, static := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/static=%v", name, static), func(t *testing.T) {
				m, err := New(spec, rand.New(rand.NewPCG(7, 8)))
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(9, 10))
				in := compressionInput(spec, 6, rng)
				var o QuantizeOptions
				if static {
					o.Calibration = []*Input{compressionInput(spec, 8, rng), compressionInput(spec, 8, rng)}
					o.Percentile = 100
				}
				if err := m.Quantize(o); err != nil {
					t.Fatal(err)
				}
				q := m.Quantization()
				if static != (q.Activations == ActivationsStatic) {
					t.Fatalf("activations %s", q.Activations)
				}
				float := m.Clone()
				float.setQuant(nil) // the same weights, multiplied in float64
				want, err := float.Forward(in)
				if err != nil {
					t.Fatal(err)
				}
				wantData := slices.Clone(want.Data)
				got, err := m.Forward(in)
				if err != nil {
					t.Fatal(err)
				}
				gotData := slices.Clone(got.Data)
				scale := 0.0
				for _, v := range wantData {
					scale = max(scale, math.Abs(v))
				}
				worst := 0.0
				for k := range gotData {
					worst = max(worst, math.Abs(gotData[k]-wantData[k]))
				}
				if worst == 0 || worst > 0.05*scale {
					t.Fatalf("int8 outputs differ from float64 by %v (outputs up to %v): want a small nonzero rounding error", worst, scale)
				}
				path := filepath.Join(t.TempDir(), "q.confide")
				if err := m.Save(path); err != nil {
					t.Fatal(err)
				}
				back, err := Load(path)
				if err != nil {
					t.Fatal(err)
				}
				if back.FileVersion() != 3 || back.Precision() != PrecisionInt8 || !slices.Equal(back.Params, m.Params) {
					t.Fatal("the file lost the quantisation or changed parameters")
				}
				for _, mm := range []*Model{back, m.Clone()} {
					out, err := mm.Forward(in)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(out.Data, gotData) {
						t.Fatal("a reloaded or cloned int8 model computes other outputs")
					}
				}
			})
		}
	}
}

// An int8 file is at least 5× smaller than the float64 one (of a half-pruned model, whose
// file leaves out the pruned weights either way), and a pruned model's zeros stay exact.
func TestQuantizedFileSize(t *testing.T) {
	m, err := New(Spec{Type: TypeMLP, Input: 200, Hidden: []int{100}, Output: 10}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prune(0.5, PruneGlobal); err != nil {
		t.Fatal(err)
	}
	float := len(m.Marshal())
	if err := m.Quantize(QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	b := m.Marshal()
	if r := float64(float) / float64(len(b)); r < 5 {
		t.Fatalf("int8 file %d bytes, float64 %d: only %.2f× smaller", len(b), float, r)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range back.Params {
		if m.Spec.Mask.IsPruned(i) && v != 0 || back.Params[i] != m.Params[i] {
			t.Fatalf("parameter %d is %v after a round trip of the pruned int8 model, was %v", i, v, m.Params[i])
		}
	}
	if int64(len(b)) > back.ParamBytes()+int64(len(back.Spec.JSON()))+2048 {
		t.Fatalf("file of %d bytes for %d bytes of parameters", len(b), back.ParamBytes())
	}
}

// Damaged quantisation sections are errors naming what is wrong, never a panic.
func TestQuantizedFileErrors(t *testing.T) {
	m, err := New(Spec{Type: TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Quantize(QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	good := m.Marshal()
	// rewrite edits the body (without the checksum) and signs it again.
	rewrite := func(edit func(body []byte) []byte) []byte {
		body := edit(bytes.Clone(good[:len(good)-sha256.Size]))
		sum := sha256.Sum256(body)
		return append(body, sum[:]...)
	}
	quantAt := bytes.Index(good, []byte(`{"precision"`))
	dataAt := quantAt + int(binary.LittleEndian.Uint32(good[quantAt-4:])) + 8
	replaceJSON := func(old, new string) []byte {
		return rewrite(func(b []byte) []byte {
			qlen := int(binary.LittleEndian.Uint32(b[quantAt-4:]))
			js := strings.Replace(string(b[quantAt:quantAt+qlen]), old, new, 1)
			out := append(slices.Clone(b[:quantAt-4]), binary.LittleEndian.AppendUint32(nil, uint32(len(js)))...)
			return append(append(out, js...), b[quantAt+qlen:]...)
		})
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"value -128", rewrite(func(b []byte) []byte { b[dataAt+4*3] = 0x80; return b }), "outside the symmetric range"},
		{"negative scale", rewrite(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[dataAt:], math.Float32bits(-1))
			return b
		}), "scale 0 is -1"},
		{"precision", replaceJSON(`"precision":"int8"`, `"precision":"int4"`), `precision "int4" unknown`},
		{"activations", replaceJSON(`"activations":"dynamic"`, `"activations":"per-token"`), `activations "per-token" unknown`},
		{"offset", replaceJSON(`"offset":0`, `"offset":1`), "is not the next weight tensor"},
		{"unknown key", replaceJSON(`"precision"`, `"bits":8,"precision"`), "unknown field"},
		{"shape", replaceJSON(`"rows":4`, `"rows":40`), "is 40×3 at 0, not a tensor of a model of 23 parameters"},
		{"geometry", replaceJSON(`"rows":4,"cols":3`, `"rows":3,"cols":4`), "need"},
		{"truncated", rewrite(func(b []byte) []byte { return b[:len(b)-1] }), "need"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
	// A version this build does not know is refused with the fix.
	v4 := rewrite(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 4); return b })
	if _, err := Unmarshal(v4); err == nil || !strings.Contains(err.Error(), "upgrade confide") || errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 4: %v", err)
	}
}

// BenchmarkQuantizedForward compares the forward pass of the MNIST MLP (784-256-128-10)
// and a spam-sized Transformer block in float64 and int8, per batch size.
func BenchmarkQuantizedForward(b *testing.B) {
	specs := map[string]Spec{
		"mlp":         {Type: TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10},
		"transformer": {Type: TypeTransformer, Vocab: 2000, Embed: 64, Heads: 4, FF: 128, Layers: 1, MaxLen: 256, Output: 2, Norm: NormPre},
		"lstm":        {Type: TypeLSTM, Vocab: 80, Embed: 8, Hidden: []int{128}, Output: 2},
	}
	for _, name := range []string{"mlp", "transformer", "lstm"} {
		spec := specs[name]
		for _, B := range []int{1, 256} {
			m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				b.Fatal(err)
			}
			q := m.Clone()
			if err := q.Quantize(QuantizeOptions{}); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(2, 2))
			in := compressionInput(spec, B, rng)
			if spec.IsSequence() {
				T := 64
				in = &Input{Tokens: make([]int32, B*T), B: B, T: T}
				for i := range in.Tokens {
					in.Tokens[i] = int32(rng.IntN(spec.Vocab))
				}
			}
			for _, mm := range []*Model{m, q} {
				b.Run(fmt.Sprintf("%s/batch=%d/%s", name, B, mm.Precision()), func(b *testing.B) {
					for b.Loop() {
						if _, err := mm.Forward(in); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(B*b.N)/b.Elapsed().Seconds(), "examples/s")
				})
			}
		}
	}
	_ = linalg.QuantBlock
}
