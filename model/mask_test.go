package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// compressionSpecs are one small model of each kind whose weights compression handles.
var compressionSpecs = map[string]Spec{
	"mlp":         {Type: TypeMLP, Input: 6, Hidden: []int{5, 4}, Output: 3},
	"lstm":        {Type: TypeLSTM, Vocab: 9, Embed: 4, Hidden: []int{5}, Output: 2},
	"gru":         {Type: TypeGRU, Vocab: 9, Embed: 4, Hidden: []int{5}, Layers: 2, Output: 2},
	"transformer": {Type: TypeTransformer, Vocab: 9, Embed: 8, Heads: 2, FF: 12, Layers: 2, MaxLen: 6, Output: 2, Norm: NormPre},
	"cnn": {Type: TypeCNN, Image: []int{6, 6}, Input: 36, Hidden: []int{5}, Output: 3,
		Conv: []ConvSpec{{Filters: 4, Kernel: 3, Groups: 2, Pool: Pool2DMax}, {Filters: 3, Kernel: 1}}},
}

// Every weight tensor is the layer's own slice of the parameter vector, tensors do not
// overlap, and the named layers are the ones compression covers.
func TestWeightTensorsAreTheLayersWeights(t *testing.T) {
	for name, spec := range compressionSpecs {
		t.Run(name, func(t *testing.T) {
			m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			ws := m.WeightTensors()
			covered := make([]bool, len(m.Params))
			var own [][]float64 // the layers' own weight slices, by walking them
			var walk func(ls []Layer)
			walk = func(ls []Layer) {
				for _, l := range ls {
					switch l := l.(type) {
					case *Linear:
						own = append(own, l.w)
					case *Conv2D:
						own = append(own, l.lin.w)
					case *Embedding:
						own = append(own, l.w)
					case *Recurrent:
						own = append(own, l.wih, l.whh)
					case *MultiHeadAttention:
						walk(l.Layers)
					case *TransformerBlock:
						walk(l.Layers)
					case *Residual:
						walk(l.Layers)
					}
				}
			}
			walk(m.Layers())
			if len(own) != len(ws) {
				t.Fatalf("%d weight tensors, the layers hold %d", len(ws), len(own))
			}
			for k, w := range ws {
				if w.Size() != len(own[k]) || unsafe.SliceData(m.Params[w.Offset:]) != unsafe.SliceData(own[k]) {
					t.Fatalf("tensor %d (%s) at %d of %d values is not the layer's slice", k, w.Name, w.Offset, w.Size())
				}
				for i := w.Offset; i < w.Offset+w.Size(); i++ {
					if covered[i] {
						t.Fatalf("tensor %s overlaps another at %d", w.Name, i)
					}
					covered[i] = true
				}
			}
		})
	}
}

func TestPruneReachesSparsityByMagnitude(t *testing.T) {
	for _, gran := range []string{PruneGlobal, PrunePerTensor} {
		for name, spec := range compressionSpecs {
			t.Run(fmt.Sprintf("%s/%s", gran, name), func(t *testing.T) {
				m, err := New(spec, rand.New(rand.NewPCG(2, 2)))
				if err != nil {
					t.Fatal(err)
				}
				before := slices.Clone(m.Params)
				if err := m.Prune(0.6, gran); err != nil {
					t.Fatal(err)
				}
				mask := m.Spec.Mask
				ws := m.WeightTensors()
				total, pruned := 0, 0
				inWeights := make([]bool, len(m.Params))
				for _, w := range ws {
					n, z := 0, 0
					for i := w.Offset; i < w.Offset+w.Size(); i++ {
						inWeights[i] = true
						n++
						if mask.IsPruned(i) {
							z++
							if m.Params[i] != 0 {
								t.Fatalf("pruned parameter %d is %v", i, m.Params[i])
							}
						}
					}
					total += n
					pruned += z
					if gran == PrunePerTensor && z != int(math.Round(0.6*float64(n))) {
						t.Fatalf("tensor %s: %d of %d pruned, want 60%%", w.Name, z, n)
					}
				}
				if pruned != mask.Pruned() || pruned != int(math.Round(0.6*float64(total))) && gran == PruneGlobal {
					t.Fatalf("%d of %d weights pruned (mask says %d), want 60%%", pruned, total, mask.Pruned())
				}
				// Nothing outside the weights is pruned; every pruned weight is no larger
				// than every kept one of its group.
				maxPruned, minKept := map[string]float64{}, map[string]float64{}
				group := func(i int) string {
					if gran == PruneGlobal {
						return ""
					}
					for _, w := range ws {
						if i >= w.Offset && i < w.Offset+w.Size() {
							return w.Name
						}
					}
					return "?"
				}
				for i, v := range before {
					switch {
					case !inWeights[i]:
						if mask.IsPruned(i) || m.Params[i] != v {
							t.Fatalf("parameter %d outside the weights changed", i)
						}
					case mask.IsPruned(i):
						g := group(i)
						maxPruned[g] = max(maxPruned[g], math.Abs(v))
					default:
						g := group(i)
						if _, ok := minKept[g]; !ok {
							minKept[g] = math.Inf(1)
						}
						minKept[g] = min(minKept[g], math.Abs(v))
						if m.Params[i] != v {
							t.Fatalf("kept parameter %d changed", i)
						}
					}
				}
				for g, mp := range maxPruned {
					if mp > minKept[g] {
						t.Fatalf("group %q: a pruned weight of magnitude %v beside a kept one of %v", g, mp, minKept[g])
					}
				}
			})
		}
	}
}

// Pruning again keeps what was pruned; bad arguments are errors.
func TestPruneAgainAndErrors(t *testing.T) {
	m, err := New(compressionSpecs["mlp"], rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prune(0.5, PrunePerTensor); err != nil {
		t.Fatal(err)
	}
	first := m.Spec.Mask
	if err := m.Prune(0.3, PruneGlobal); err != nil {
		t.Fatal(err)
	}
	for i := range m.Params {
		if first.IsPruned(i) && !m.Spec.Mask.IsPruned(i) {
			t.Fatalf("parameter %d was pruned and is not any more", i)
		}
	}
	for _, tc := range []struct {
		s    float64
		g    string
		want string
	}{{1, PruneGlobal, "sparsity 1"}, {-0.1, PruneGlobal, "sparsity -0.1"}, {math.NaN(), PruneGlobal, "sparsity NaN"}, {0.5, "rows", `granularity "rows" unknown`}} {
		if err := m.Prune(tc.s, tc.g); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prune(%v, %q): %v, want %q", tc.s, tc.g, err, tc.want)
		}
	}
}

// The mask travels with the spec: JSON and YAML, model files, New and Unmarshal apply it;
// a mask of another size or with inconsistent bits is refused.
func TestMaskInSpecAndFile(t *testing.T) {
	m, err := New(compressionSpecs["lstm"], rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prune(0.7, PruneGlobal); err != nil {
		t.Fatal(err)
	}
	js := m.Spec.JSON()
	parsed, err := ParseSpec(js) // the YAML decoder reads JSON
	if err != nil {
		t.Fatal(err)
	}
	if string(parsed.JSON()) != string(js) {
		t.Fatalf("spec changed in a round trip:\n%s\n%s", js, parsed.JSON())
	}
	yml := fmt.Sprintf("type: lstm\nvocab: 9\nembed: 4\nhidden: [5]\noutput: 2\nmask:\n  params: %d\n  pruned: %d\n  bits: %s\n",
		m.Spec.Mask.Len(), m.Spec.Mask.Pruned(), m.Spec.Mask.toJSON().Bits)
	if y, err := ParseSpec([]byte(yml)); err != nil || y.Mask.Pruned() != m.Spec.Mask.Pruned() {
		t.Fatalf("YAML mask: %v", err)
	}
	// New applies the mask to a fresh initialisation.
	fresh, err := New(parsed, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range fresh.Params {
		if parsed.Mask.IsPruned(i) && fresh.Params[i] != 0 {
			t.Fatalf("New left pruned parameter %d at %v", i, fresh.Params[i])
		}
	}
	// A file whose pruned parameters hold noise (a checkpoint after secure aggregation)
	// reads them as zero.
	noisy := m.Clone()
	for i := range noisy.Params {
		noisy.Params[i] += 1e-4
	}
	path := filepath.Join(t.TempDir(), "pruned.confide")
	if err := noisy.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range back.Params {
		if m.Spec.Mask.IsPruned(i) != (v == 0) {
			t.Fatalf("parameter %d = %v after Load (pruned %v)", i, v, m.Spec.Mask.IsPruned(i))
		}
	}
	if back.Spec.Mask.Pruned() != m.Spec.Mask.Pruned() {
		t.Fatal("the mask did not survive the file")
	}
	// The file leaves the pruned parameters out: 8 bytes for each kept one.
	if got, want := back.ParamBytes(), 8*int64(len(m.Params)-m.Spec.Mask.Pruned()); got != want || back.FileVersion() != 3 {
		t.Fatalf("pruned model: %d parameter bytes (version %d), want %d (version 3)", got, back.FileVersion(), want)
	}
	// A mask of another architecture, and inconsistent masks, are refused.
	other := compressionSpecs["mlp"]
	other.Mask = m.Spec.Mask
	if err := other.Validate(); err == nil || !strings.Contains(err.Error(), "mask covers") {
		t.Fatalf("mask of another model: %v", err)
	}
	bits := m.Spec.Mask.toJSON().Bits
	for _, tc := range []struct{ json, want string }{
		{fmt.Sprintf(`{"params": %d, "pruned": 3, "bits": %q}`, m.Spec.Mask.Len(), bits), "mask.pruned = 3"},
		{fmt.Sprintf(`{"params": 8, "pruned": %d, "bits": %q}`, m.Spec.Mask.Pruned(), bits), "more than the 1 bytes"},
		{`{"params": 4, "pruned": 1, "bits": "8A=="}`, "beyond mask.params"},
		{`{"params": 0, "pruned": 0, "bits": ""}`, "mask.params = 0"},
		{`{"params": 8, "pruned": 0, "bits": "!!"}`, "mask.bits"},
		{`{"params": 8, "pruned": 0, "bits": "AA==", "extra": 1}`, `unknown key "extra"`},
	} {
		s := strings.Replace(string(compressionSpecs["mlp"].JSON()), "}", `,"mask":`+tc.json+"}", 1)
		if _, err := ParseSpec([]byte(s)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.json, err, tc.want)
		}
	}
}
