package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The same slip in the sim's and the server's config files gets the same form of error: the
// key, the closest valid key of its section, and every key the section takes.
func TestMisspeltKeyNamesTheValidKeys(t *testing.T) {
	training := "training takes batch_size, beta1, beta2, epochs, eps, loss_cap, lr, momentum, nesterov, optimizer, schedule, warmup, weight_decay, weight_scale"
	for _, tc := range []struct {
		name, yaml string
		load       func(string) error
		want       []string
	}{
		{"sim/nested", "rounds: 7\ntraining:\n  epocs: 2\n", loadSim,
			[]string{"unknown key training.epocs (did you mean training.epochs?)", training}},
		{"server/nested", "federation:\n  training:\n    epocs: 2\n", loadServer,
			[]string{"unknown key federation.training.epocs (did you mean federation.training.epochs?)", "federation." + training}},
		{"sim/top", "roundz: 7\n", loadSim, []string{"unknown key roundz (did you mean rounds?): the top level takes clients, clients_per_round,"}},
		{"server/top", "metrics_lisen: x\n", loadServer, []string{"unknown key metrics_lisen (did you mean metrics_listen?): the top level takes aggregators, checkpoint_dir,"}},
		{"sim/far", "training:\n  learning_rate: 0.1\n", loadSim, []string{"unknown key training.learning_rate: " + training}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load(writeFile(t, "c.yaml", tc.yaml))
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("error %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// The same misspelt key in the sim's, the server's and the client's config files gets one
// form of error: the key, the closest valid key of its section, and every key the section
// takes (the client's keys are its flags, with underscores).
func TestMisspeltKeyOneFormInEveryConfig(t *testing.T) {
	form := regexp.MustCompile(`unknown key ((?:federation\.)?)seeed \(did you mean ((?:federation\.)?)seed\?\): (the top level|federation) takes [a-z_, ]*\bseed\b`)
	for _, tc := range []struct{ name, yaml, section string }{
		{"sim", "seeed: 3\n", ""},
		{"server", "federation:\n  seeed: 3\n", "federation."},
		{"client", "seeed: 3\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, tc.name, "--config", writeFile(t, "c.yaml", tc.yaml))
			m := form.FindStringSubmatch(fmt.Sprint(err))
			if m == nil || m[1] != tc.section || m[2] != tc.section {
				t.Fatalf("error %v, want the form %s with section %q", err, form, tc.section)
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("error %v: want a config error (exit code 2)", err)
			}
		})
	}
}

// Dashed spellings of keys are aliases of the snake_case ones.
func TestDashedKeysAreAliases(t *testing.T) {
	c, err := loadSimConfig(writeFile(t, "c.yaml", "clients-per-round: 4\ntraining:\n  batch-size: 7\n"))
	if err != nil || c.ClientsPerRound != 4 || c.Training.BatchSize != 7 {
		t.Fatalf("sim: clients_per_round %d, training.batch_size %d, err %v; want 4, 7, nil", c.ClientsPerRound, c.Training.BatchSize, err)
	}
	sf, err := readServerFile(writeFile(t, "s.yaml", "metrics-listen: 127.0.0.1:9\nfederation:\n  training:\n    weight-decay: 0.01\n"))
	if err != nil || sf.MetricsListen != "127.0.0.1:9" || sf.Federation.Training.WeightDecay != 0.01 {
		t.Fatalf("server: metrics_listen %q, weight_decay %v, err %v", sf.MetricsListen, sf.Federation.Training.WeightDecay, err)
	}
	if _, err := readServerFile(writeFile(t, "s.yaml", "metrics-listen: a\nmetrics_listen: b\n")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("both spellings of one key: error %v, want one saying it is given twice", err)
	}
	cmd := findCommand(t, "confide client")
	g := &globalOptions{output: "text", logLevel: "error", logFormat: "text", configFile: writeFile(t, "c.yaml", "num-clients: 4\nclient_index: 3\nmin-noise-multiplier: 0.75\n")}
	if err := g.apply(cmd); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"num-clients": "4", "client-index": "3", "min-noise-multiplier": "0.75"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("client: --%s = %s from the file, want %s", flag, got, want)
		}
	}
}

func loadSim(p string) error    { _, err := loadSimConfig(p); return err }
func loadServer(p string) error { _, err := readServerFile(p); return err }

func TestClosest(t *testing.T) {
	names := []string{"batch_size", "epochs", "lr", "momentum", "weight_decay"}
	for _, tc := range []struct{ in, want string }{
		{"epocs", "epochs"}, {"epoch", "epochs"}, {"momentun", "momentum"}, {"weightdecay", "weight_decay"},
		{"learning_rate", ""}, {"zzz", ""}, {"l", "lr"},
	} {
		if got := closest(tc.in, names); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
