package client_test

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/client"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/train"
)

// fillDistinct sets every leaf of v to its own non-zero value, so that a setting lost or
// swapped on the way shows as a difference.
func fillDistinct(v reflect.Value, k *int) {
	*k++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fillDistinct(v.Field(i), k)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillDistinct(v.Elem(), k)
	case reflect.Int:
		v.SetInt(int64(*k))
	case reflect.Uint64:
		v.SetUint(uint64(*k))
	case reflect.Float64:
		v.SetFloat(float64(*k) + 0.25)
	case reflect.String:
		v.SetString(fmt.Sprintf("setting-%d", *k))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fillDistinct(s.Index(0), k)
		fillDistinct(s.Index(1), k)
		v.Set(s)
	default:
		panic(fmt.Sprintf("fillDistinct: %s: add the kind", v.Type()))
	}
}

// serverSettings is what a federation's operator writes to ask clients to train as want
// does: the server config's training and dp sections.
func serverSettings(want train.Config) (server.TrainingConfig, server.DPConfig) {
	o := want.Optimizer
	t := server.TrainingConfig{
		Epochs: want.Epochs, BatchSize: want.BatchSize, Optimizer: o.Name, LR: o.LR, Momentum: o.Momentum, Nesterov: o.Nesterov,
		WeightDecay: o.WeightDecay, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, Schedule: want.Schedule, Warmup: want.Warmup,
	}
	var d server.DPConfig
	if p := want.DP; p != nil {
		d = server.DPConfig{NoiseMultiplier: p.NoiseMultiplier, MaxGradNorm: p.MaxGradNorm, Delta: 1e-5, SampleRate: p.SampleRate, Steps: p.Steps,
			Clipping: p.Clipping, LayerMaxGradNorms: p.LayerMaxGradNorms}
	}
	return t, d
}

// TestEveryTrainingSettingReachesTheClient: every field of train.Config, set on the server
// to a value of its own, comes out equal in a federated client's trainer configuration,
// through the FitSpec's wire encoding (server.LocalTrainingSpec, FitConfigFromSpec,
// TrainConfig). A new train.Config field fails this test until it travels. Not the
// server's: Seed (every client draws its own), under DP-SGD Epochs and BatchSize (the
// server's schedule: one pass of dp.steps Poisson batches of expected size q·n), and the
// distributed-noise fields the Party derives.
func TestEveryTrainingSettingReachesTheClient(t *testing.T) {
	const n = 1000 // the client's examples
	for _, dp := range []bool{false, true} {
		t.Run(fmt.Sprintf("dp=%v", dp), func(t *testing.T) {
			var want train.Config
			k := 0
			fillDistinct(reflect.ValueOf(&want).Elem(), &k)
			if dp {
				want.DP.SampleRate = 0.125 // a probability
				// The Party derives these from dp.distributed and the secure aggregation's
				// parameters (TestDistributedNoiseChecksTheTask), not the server directly.
				want.DP.NoiseShares, want.DP.ExpectedBatch, want.DP.SumClip = 0, 0, 0
			} else {
				want.DP = nil
			}
			ts, ds := serverSettings(want)
			b, err := proto.Marshal(server.LocalTrainingSpec(ts, ds))
			if err != nil {
				t.Fatal(err)
			}
			var spec pb.FitSpec
			if err := proto.Unmarshal(b, &spec); err != nil {
				t.Fatal(err)
			}
			got := client.TrainConfig(client.FitConfigFromSpec(&spec), n, want.Seed)
			if dp {
				want.Epochs, want.BatchSize = 1, int(math.Round(want.DP.SampleRate*n))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the client trains with\n%+v (dp %+v)\nthe server asked for\n%+v (dp %+v)", got, got.DP, want, want.DP)
			}
		})
	}
}
