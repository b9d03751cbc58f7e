package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// ReferenceCNN is the CNN of pytorch_reference.py's cnn bench (Papernot et al. 2021,
// Opacus' MNIST example): conv 16 8×8 stride 2 padding 3, tanh, max-pool 2 stride 1; conv
// 32 4×4 stride 2, tanh, max-pool 2 stride 1; 512 → 32, tanh; 32 → 10.
func referenceCNN() Spec {
	return Spec{Type: TypeCNN, Image: []int{28, 28}, Activation: ActTanh, Hidden: []int{32}, Output: 10,
		Conv: []ConvSpec{
			{Filters: 16, Kernel: 8, Stride: 2, Padding: 3, Pool: Pool2DMax, PoolSize: 2, PoolStride: 1},
			{Filters: 32, Kernel: 4, Stride: 2, Pool: Pool2DMax, PoolSize: 2, PoolStride: 1},
		}}
}

// cnnSpecs are small CNNs covering every block option.
var cnnSpecs = map[string]Spec{
	"groupnorm_maxpool_dilated_avgpool": {Type: TypeCNN, Image: []int{9, 8, 2}, Activation: ActTanh, Hidden: []int{5}, Output: 3,
		Conv: []ConvSpec{
			{Filters: 4, Kernel: 3, Padding: 1, Groups: 2, Pool: Pool2DMax, PoolStride: 1},
			{Filters: 3, Kernel: 2, Stride: 2, Dilation: 2, Padding: 1, Pool: Pool2DAvg, PoolSize: 2},
		}},
	"strided_no_hidden": {Type: TypeCNN, Image: []int{7, 7}, Activation: ActGELU, Output: 2, Loss: LossMSE,
		Conv: []ConvSpec{{Filters: 3, Kernel: 3, Stride: 2, Groups: 3}}},
	// A ScatterNet CNN: the conv blocks read the 5 channels × 4×4 scattering map of 8×8 images.
	"scattering_features": {Type: TypeCNN, Image: []int{8, 8}, Activation: ActTanh, Hidden: []int{4}, Output: 3,
		Features: &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: FeatureNormGroup, Groups: 5},
		Conv:     []ConvSpec{{Filters: 4, Kernel: 3, Padding: 1, Groups: 2, Pool: Pool2DMax, PoolStride: 1}}},
}

func cnnInput(t *testing.T, spec Spec, B int) (*Model, *Input, Targets) {
	t.Helper()
	m, err := New(spec, rand.New(rand.NewPCG(3, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Params { // biases and GroupNorm parameters away from their initial 0 and 1
		m.Params[i] += 0.05 * math.Sin(float64(i))
	}
	rng := rand.New(rand.NewPCG(3, 2))
	in := &Input{X: make([]float64, B*m.Spec.Input), B: B}
	for i := range in.X {
		in.X[i] = rng.NormFloat64()
	}
	var tg Targets
	if m.Spec.Loss == LossMSE {
		tg.Value = make([]float64, B*spec.Output)
		for i := range tg.Value {
			tg.Value[i] = rng.NormFloat64()
		}
	} else {
		tg.Class = make([]int32, B)
		for i := range tg.Class {
			tg.Class[i] = int32(rng.IntN(spec.Output))
		}
	}
	return m, in, tg
}

func TestCNNBackpropMatchesFiniteDifferences(t *testing.T) {
	for name, spec := range cnnSpecs {
		t.Run(name, func(t *testing.T) {
			m, in, tg := cnnInput(t, spec, 3)
			checkBackprop(t, m, in, tg, 1, 1e-6)
		})
	}
}

// Flat and per-layer per-example norms, and the weighted sums, against one example at a time.
func TestCNNPerExampleMatchesNaive(t *testing.T) {
	specs := map[string]Spec{"reference": referenceCNN()}
	for k, v := range cnnSpecs {
		specs[k] = v
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			const B = 4
			m, in, tg := cnnInput(t, spec, B)
			sizes := m.ParamLayerSizes()
			layerNorms := make([][]float64, len(sizes))
			for l := range layerNorms {
				layerNorms[l] = make([]float64, B)
			}
			if _, _, err := m.PerExampleLayerNorms(in, tg, nil, layerNorms); err != nil {
				t.Fatal(err)
			}
			w := []float64{0.3, 1, 0, 2}
			layerW := make([][]float64, len(sizes))
			for l := range layerW {
				layerW[l] = make([]float64, B)
				for i := range B {
					layerW[l][i] = w[i] * float64(l+1)
				}
			}
			m.ZeroGrads()
			if err := m.AccumulateWeightedPerLayer(layerW); err != nil {
				t.Fatal(err)
			}
			gotPerLayer := append([]float64(nil), m.Grads...)
			norms := make([]float64, B)
			if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
				t.Fatal(err)
			}
			m.ZeroGrads()
			if err := m.AccumulateWeighted(w); err != nil {
				t.Fatal(err)
			}
			got := append([]float64(nil), m.Grads...)

			want := make([]float64, len(got))
			wantPerLayer := make([]float64, len(got))
			d := m.Spec.Input
			for i := range B {
				one := &Input{X: in.X[i*d : (i+1)*d], B: 1}
				tgi := Targets{}
				if tg.Class != nil {
					tgi.Class = tg.Class[i : i+1]
				} else {
					tgi.Value = tg.Value[i*spec.Output : (i+1)*spec.Output]
				}
				m.ZeroGrads()
				if _, _, err := m.Backprop(one, tgi, 1, nil); err != nil {
					t.Fatal(err)
				}
				total, off := 0.0, 0
				for l, size := range sizes {
					n := 0.0
					for k := off; k < off+size; k++ {
						g := m.Grads[k]
						n += g * g
						wantPerLayer[k] += layerW[l][i] * g
					}
					if ln := math.Sqrt(n); math.Abs(layerNorms[l][i]-ln) > 1e-9*ln {
						t.Errorf("example %d layer %d: norm %.15g, naive %.15g", i, l, layerNorms[l][i], ln)
					}
					total += n
					off += size
				}
				for k, g := range m.Grads {
					want[k] += w[i] * g
				}
				if n := math.Sqrt(total); math.Abs(norms[i]-n) > 1e-9*n {
					t.Errorf("example %d: norm %.15g, naive %.15g", i, norms[i], n)
				}
			}
			if e := relErr(got, want); e > 1e-9 {
				t.Errorf("weighted sum: relative error %.3g", e)
			}
			if e := relErr(gotPerLayer, wantPerLayer); e > 1e-9 {
				t.Errorf("per-layer weighted sum: relative error %.3g", e)
			}
		})
	}
}

func TestReferenceCNNShape(t *testing.T) {
	m, err := New(referenceCNN(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	// PyTorch's parameter count of pytorch_reference.py's CNN: 16·64+16, 32·256+32,
	// 512·32+32, 32·10+10.
	if m.NumParams() != 26010 {
		t.Fatalf("NumParams = %d, want 26010", m.NumParams())
	}
	var kinds []string
	for _, l := range m.Layers() {
		switch l := l.(type) {
		case *Conv2D:
			kinds = append(kinds, "conv")
		case *Pool2D:
			kinds = append(kinds, l.Mode)
		case *Activation:
			kinds = append(kinds, l.Name)
		case *Flatten:
			kinds = append(kinds, "flatten")
		case *Linear:
			kinds = append(kinds, "linear")
		}
	}
	if got := strings.Join(kinds, " "); got != "conv tanh max conv tanh max flatten linear tanh linear" {
		t.Fatalf("layers %s", got)
	}
	c2 := m.Layers()[3].(*Conv2D)
	if c2.InH != 13 || c2.OutH != 5 || m.Layers()[5].(*Pool2D).OutH != 4 {
		t.Fatalf("second block %d → %d → %d, want 13 → 5 → 4", c2.InH, c2.OutH, m.Layers()[5].(*Pool2D).OutH)
	}
}

func TestCNNSpecValidation(t *testing.T) {
	checkParseSpec(t, []specCase{
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 16, kernel: 8, stride: 2, padding: 3, pool: max, pool_stride: 1}]\nhidden: [32]\noutput: 10\n", ""},
		{"type: cnn\nimage: [28, 28]\ninput: 784\nconv: [{filters: 4, kernel: 3}]\noutput: 10\n", ""},
		{"type: cnn\nimage: [32, 32, 3]\nconv: [{filters: 8, kernel: 3, groups: 4, pool: avg}]\noutput: 10\n", ""},
		{"type: cnn\nconv: [{filters: 4, kernel: 3}]\noutput: 10\n", "image = []"},
		{"type: cnn\nimage: [28]\nconv: [{filters: 4, kernel: 3}]\noutput: 10\n", "image = [28]"},
		{"type: cnn\nimage: [28, 0]\nconv: [{filters: 4, kernel: 3}]\noutput: 10\n", "rows and cols must be in [1, 4096]"},
		{"type: cnn\nimage: [28, 28]\ninput: 700\nconv: [{filters: 4, kernel: 3}]\noutput: 10\n", "input = 700 but image [28 28] holds 784 values"},
		{"type: cnn\nimage: [28, 28]\noutput: 10\n", "conv is empty"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 0, kernel: 3}]\noutput: 10\n", "conv[0].filters = 0"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 0}]\noutput: 10\n", "conv[0].kernel = 0"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3, padding: -1}]\noutput: 10\n", "conv[0].padding = -1"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3, stride: -2}]\noutput: 10\n", "conv[0].stride = -2"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 6, kernel: 3, groups: 4}]\noutput: 10\n", "conv[0].groups = 4: must divide filters = 6"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3, pool: min}]\noutput: 10\n", `conv[0].pool "min" unknown`},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3, pool_size: 2}]\noutput: 10\n", "need pool: max or avg"},
		{"type: cnn\nimage: [8, 8]\nconv: [{filters: 4, kernel: 9}]\noutput: 10\n", "conv[0]: kernel 9 (dilation 1, padding 0) or pool window 0 does not fit its 8×8 input"},
		{"type: cnn\nimage: [8, 8]\nconv: [{filters: 4, kernel: 3, dilation: 4}]\noutput: 10\n", "conv[0]: kernel 3 (dilation 4"},
		{"type: cnn\nimage: [8, 8]\nconv: [{filters: 4, kernel: 3}, {filters: 4, kernel: 3, pool: max, pool_size: 5}]\noutput: 10\n", "conv[1]: kernel 3 (dilation 1, padding 0) or pool window 5 does not fit its 6×6 input"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 16, kernel: 3, padding: 1, groups: 4}]\nfeatures: {type: scattering, j: 2, shape: [28, 28], norm: group, groups: 27}\noutput: 10\n", ""},
		{"type: cnn\nimage: [28, 28, 3]\nconv: [{filters: 4, kernel: 3}]\nfeatures: {type: scattering, j: 2, shape: [28, 28]}\noutput: 10\n", "scattering transform reads greyscale images"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3}]\nfeatures: {type: scattering, j: 2, shape: [28, 27]}\noutput: 10\n", "features.shape = [28 27] has 756 pixels but the model's input is 784"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 8}]\nfeatures: {type: scattering, j: 2, shape: [28, 28]}\noutput: 10\n", "conv[0]: kernel 8 (dilation 1, padding 0) or pool window 0 does not fit its 7×7 input"},
		{"type: cnn\nimage: [28, 28]\nconv: [{filters: 4, kernel: 3, fliters: 3}]\noutput: 10\n", "field fliters not found"},
		{"type: cnn\nimage: [1024, 1024]\nconv: [{filters: 64, kernel: 5, padding: 2}]\noutput: 10\n", "model.Limits.MaxActivation"},
	})
}

// A hostile cnn spec is refused before anything is allocated, whatever its sizes.
func TestCNNSpecOverflowIsAnError(t *testing.T) {
	for _, s := range []Spec{
		{Type: TypeCNN, Image: []int{4096, 4096, math.MaxInt / 2}, Conv: []ConvSpec{{Filters: 1, Kernel: 1}}, Output: 2},
		{Type: TypeCNN, Image: []int{8, 8}, Conv: []ConvSpec{{Filters: math.MaxInt / 2, Kernel: 4096, Padding: 4096}}, Output: 2},
	} {
		for _, l := range []Limits{{}, unlimited} {
			if _, err := l.NumParams(s); err == nil {
				t.Errorf("%s accepted under %+v", s.JSON(), l)
			}
		}
	}
}

func TestCNNFileRoundTrip(t *testing.T) {
	for name, spec := range cnnSpecs {
		m, in, _ := cnnInput(t, spec, 2)
		checkFileRoundTrip(t, name, m, in)
	}
}
