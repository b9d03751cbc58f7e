package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/secagg"
)

// A fleet of virtual clients (confide client --virtual N) is N complete clients in one
// process, each exactly what a lone 'confide client' with the same index would be: its own
// name and certificate (its identity in the federation and in secure aggregation), its own
// state directory (ledger and key shares), its own shard of --dataset and its own
// connection, served by client.Run (client.RunVirtual). What they only read is shared: the
// dataset is loaded and partitioned once, and the CA's Verifier (with its cache of checked
// chains) is one.

// virtualResult is the fleet's -o json object: a line per client and the totals.
type virtualResult struct {
	Virtual    int     `json:"virtual"`
	FirstIndex int     `json:"first_index"`
	Seconds    float64 `json:"seconds"`
	// Totals over the fleet (client.Tally), and the largest ε a client spent (null with
	// --no-dp).
	TasksDone      int            `json:"tasks_done"`
	TasksRefused   int            `json:"tasks_refused"`
	TasksFailed    int            `json:"tasks_failed"`
	ResultsRefused int            `json:"results_refused_by_server"`
	EpsilonMax     *float64       `json:"epsilon_max"`
	Failed         int            `json:"clients_failed"`
	Clients        []clientResult `json:"clients"`
}

// virtualName is the name of the virtual client with this index: --name as a pattern with
// one %d (default client-%d, the names 'confide ca issue --name client-<i>' and the Helm
// chart's client fleet use).
func virtualName(pattern string, index int) string {
	return fmt.Sprintf(pattern, index)
}

// checkVirtualFlags refuses the flags a fleet cannot take, naming the ones it does.
func (o clientOptions) checkVirtualFlags() error {
	switch {
	case o.virtual < 1:
		return fmt.Errorf("--virtual %d: the number of clients this process hosts must be ≥ 1", o.virtual)
	case o.clientIndex < 0 || o.numClients < 1 || o.clientIndex+o.virtual > o.numClients:
		return fmt.Errorf("--client-index %d, --virtual %d, --num-clients %d: the fleet's indices --client-index…--client-index+N−1 must lie in 0…--num-clients−1 (e.g. --client-index 250 --virtual 250 --num-clients 1000 for the second of four processes)", o.clientIndex, o.virtual, o.numClients)
	case o.data != "":
		return errors.New("--data with --virtual: a fleet trains on shards of --dataset (by --partition, --num-clients and --seed); a client with its own file runs as a lone 'confide client --data FILE'")
	case o.tlsCert != "" || o.tlsKey != "":
		return errors.New("--tls-cert and --tls-key name one client's certificate: a --virtual fleet takes --identity-dir, holding NAME.crt and NAME.key for every client (from 'confide ca issue --name NAME')")
	case o.insecure && o.identityDir != "":
		return errors.New("--insecure with --identity-dir: choose certificates or plaintext")
	case !o.insecure && (o.identityDir == "" || o.ca == ""):
		return errors.New("a --virtual fleet connects over mutual TLS: set --ca (the federation's CA certificate) and --identity-dir (NAME.crt and NAME.key of every client, from 'confide ca issue --name NAME'); --insecure connects in plaintext, for tests on a trusted network only")
	}
	return checkIndexPattern("--name", o.name)
}

// virtualIdentity loads the TLS configuration and Signer of the client name from
// --identity-dir, checked against the fleet's Verifier.
func virtualIdentity(o clientOptions, name string, v *secagg.Verifier) (*tls.Config, *secagg.Signer, error) {
	certFile, keyFile := filepath.Join(o.identityDir, name+".crt"), filepath.Join(o.identityDir, name+".key")
	tc, err := client.TLSConfig(o.ca, certFile, keyFile)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("virtual client %s: %w (--identity-dir holds NAME.crt and NAME.key for every client of the fleet: issue them with 'confide ca issue --name %s')", name, err, name)}
	}
	if cn := tc.Certificates[0].Leaf.Subject.CommonName; cn != name {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("virtual client %s: %s is the certificate of %q: a client's certificate names it (re-issue it with 'confide ca issue --name %s')", name, certFile, cn, name)}
	}
	signer, err := identitySigner(tc, v, certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	return tc, signer, nil
}

func runVirtualClients(ctx context.Context, g *globalOptions, w io.Writer, o clientOptions) error {
	if o.name == "" {
		o.name = "client-%d"
	}
	if err := o.checkVirtualFlags(); err != nil {
		return &exitError{code: 2, err: err}
	}
	budget, err := o.checkFloorsAndBudget()
	if err != nil {
		return err
	}
	spec, err := data.ParsePartitionSpec(o.partition)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--partition: %w", err)}
	}
	var verifier *secagg.Verifier
	if !o.insecure {
		if verifier, err = caVerifier(o.ca, "--ca"); err != nil {
			return err
		}
	} else {
		slog.Warn("--insecure: plaintext gRPC for every virtual client; anyone on the network can read and alter the traffic and the server is not authenticated (for tests on a trusted network only; use --ca and --identity-dir)")
	}
	trains, tests, err := datasetShards(ctx, o, spec, o.clientIndex, o.virtual)
	if err != nil {
		return err
	}
	fleet := make([]client.VirtualClient, o.virtual)
	results := make([]clientResult, o.virtual)
	tallies := make([]client.Tally, o.virtual)
	trainers := make([]*client.ModelTrainer, 0, o.virtual)
	defer func() {
		for _, tr := range trainers {
			tr.Close()
		}
	}()
	for k := range o.virtual {
		index := o.clientIndex + k
		name := virtualName(o.name, index)
		if trains[k].N == 0 {
			return &exitError{code: 2, err: fmt.Errorf("virtual client %s (index %d) has no training examples in --partition %s of --num-clients %d: use fewer clients or another partition", name, index, spec, o.numClients)}
		}
		var (
			tc     *tls.Config
			signer *secagg.Signer
		)
		if !o.insecure {
			if tc, signer, err = virtualIdentity(o, name, verifier); err != nil {
				return err
			}
		}
		stateDir := filepath.Join(o.stateDir, name)
		if o.stateDir == "" {
			if stateDir, err = defaultStateDir(name); err != nil {
				return err
			}
		}
		store, err := client.NewDirStore(stateDir)
		if err != nil {
			return err
		}
		seed, noise := o.noiseSeed(index)
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: trains[k], Test: tests[k], Budget: budget, RaiseBudget: o.raiseBudget, Store: store, Seed: seed, Precision: o.precision})
		if err != nil {
			return fmt.Errorf("virtual client %s: %w", name, ledgerHint(err, stateDir))
		}
		trainers = append(trainers, tr)
		fleet[k] = client.VirtualClient{Config: o.runConfig(name, tc, signer, verifier, store, noise, &tallies[k]), Trainer: tr}
		results[k] = clientResult{Name: name, Examples: trains[k].N, NoDP: budget == nil, DP: budget != nil}
		if l := tr.Ledger(); l != nil {
			results[k].Ledger = l.Where()
			results[k].BudgetEpsilon = l.Budget().Epsilon
		}
	}
	slog.Info("virtual clients starting", "clients", o.virtual, "first", virtualName(o.name, o.clientIndex), "last", virtualName(o.name, o.clientIndex+o.virtual-1),
		"num_clients", o.numClients, "partition", spec.String(), "dataset", o.dataset, "dp", budget != nil)
	start := time.Now()
	errs, err := client.RunVirtual(ctx, fleet)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err() // interrupted, as a lone client is
	}
	res := virtualResult{Virtual: o.virtual, FirstIndex: o.clientIndex, Seconds: time.Since(start).Seconds(), Clients: results}
	var failures []error
	for k, tr := range trainers {
		r := &res.Clients[k]
		r.Seconds = res.Seconds
		if l := tr.Ledger(); l != nil {
			var eps float64
			eps, r.Delta = l.Spent()
			r.Epsilon = &eps
			if res.EpsilonMax == nil || eps > *res.EpsilonMax {
				res.EpsilonMax = &eps
			}
		}
		t := tallies[k]
		r.TasksDone, r.TasksRefused, r.TasksFailed, r.ResultsRefused = t.Completed, t.Refused, t.Failed, t.Rejected
		res.TasksDone += t.Completed
		res.TasksRefused += t.Refused
		res.TasksFailed += t.Failed
		res.ResultsRefused += t.Rejected
		if errs[k] != nil {
			res.Failed++
			failures = append(failures, errs[k])
		}
	}
	total := client.Tally{Completed: res.TasksDone, Refused: res.TasksRefused, Failed: res.TasksFailed, Rejected: res.ResultsRefused}
	if err := g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%d virtual clients (%s…%s): federation finished after %.1fs; %s", res.Virtual, res.Clients[0].Name, res.Clients[len(res.Clients)-1].Name, res.Seconds, total)
		if res.EpsilonMax != nil {
			fmt.Fprintf(w, "; largest ε spent %.3g of %g at δ = %g", *res.EpsilonMax, budget.Epsilon, budget.Delta)
		} else {
			fmt.Fprint(w, "; no DP (--no-dp)")
		}
		if res.Failed > 0 {
			fmt.Fprintf(w, "; %d clients failed", res.Failed)
		}
		fmt.Fprintln(w)
	}); err != nil {
		return err
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d virtual clients failed: %w", len(failures), o.virtual, errors.Join(failures[:min(len(failures), 5)]...))
	}
	if res.TasksDone == 0 {
		return fmt.Errorf("no virtual client completed a task (%s): see the warnings above for the reasons", total)
	}
	return nil
}
