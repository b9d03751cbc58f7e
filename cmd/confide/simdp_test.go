package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// sectionKeys lists the keys of config struct t under prefix, with their docs.
func sectionKeys(t reflect.Type, prefix string) map[string]string {
	out := map[string]string{}
	for _, k := range structKeys(t, "") {
		if rest, ok := strings.CutPrefix(k.name, prefix); ok {
			out[rest] = fieldDoc(k.field)
		}
	}
	return out
}

// The sim's dp section is the server's (the same keys, documented once, on server.DPConfig,
// budget_epsilon included: the server samples by it, the sim's clients refuse by it) plus
// deterministic_noise: a key the server gains is a sim key too, and none is re-declared
// with its own doc.
func TestSimDPSectionIsTheServers(t *testing.T) {
	srv := sectionKeys(reflect.TypeOf(serverFile{}), "federation.dp.")
	sm := sectionKeys(reflect.TypeOf(sim.Config{}), "dp.")
	if len(srv) < 10 {
		t.Fatalf("the server's dp section has %d keys: the walk is broken", len(srv))
	}
	var extra []string
	for k, doc := range sm {
		sdoc, ok := srv[k]
		if !ok {
			extra = append(extra, k)
			continue
		}
		if doc != sdoc {
			t.Errorf("dp.%s: the sim documents it as %q, the server as %q", k, doc, sdoc)
		}
	}
	for k := range srv {
		if _, ok := sm[k]; !ok {
			t.Errorf("the server's dp.%s is not a sim key", k)
		}
	}
	slices.Sort(extra)
	if want := []string{"deterministic_noise"}; !slices.Equal(extra, want) {
		t.Errorf("sim-only dp keys %v, want %v", extra, want)
	}
}

// Every dp key loads into the sim's section from the file (a dashed alias too) and the
// environment, the server's keys into the embedded server.DPConfig.
func TestSimDPKeysLoad(t *testing.T) {
	t.Setenv("CONFIDE_DP_STATISTICS_MAX_ROWS", "500")
	c, err := loadSimConfig(writeFile(t, "c.yaml", `dp:
  noise_multiplier: 0.9
  sample-rate: 0.05
  steps: 30
  budget_epsilon: 6
  deterministic-noise: true
  user_level:
    mode: central
`))
	if err != nil {
		t.Fatal(err)
	}
	want := sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 0.9, SampleRate: 0.05, Steps: 30, StatisticsMaxRows: 500,
		UserLevel: server.UserLevelDPConfig{Mode: server.UserLevelCentral}, BudgetEpsilon: 6}, DeterministicNoise: true}
	if !reflect.DeepEqual(c.DP, want) {
		t.Fatalf("dp section %+v, want %+v", c.DP, want)
	}
}
