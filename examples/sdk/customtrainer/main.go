// Command customtrainer is a federation client with its own model and training loop:
// a hand-written logistic regression (logistic.go) behind client.Trainer, trained with
// DP-SGD from dpsgd.PoissonSample and dpsgd.Gradients, its privacy kept in the ledger of a
// client.PrivacyAccount, its updates encrypted for secure aggregation by client.Run. Its
// ledger is the same file `confide client` keeps: `confide privacy ledger` audits it.
//
//	confide server --config examples/sdk/server.yaml --insecure &
//	for i in 0 1 2; do
//	  go run ./examples/sdk/customtrainer --insecure --client-index $i --state-dir state/sdk-$i &
//	done; wait
//	confide privacy ledger state/sdk-0/privacy-ledger.json
//
// Each client draws its own synthetic data (--client-index seeds it). Over TLS, give --ca,
// --tls-cert and --tls-key as to confide client: the certificate also signs this client's
// secure-aggregation messages.
package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/secagg"
)

// options are the command's flags.
type options struct {
	server, name, stateDir string
	ca, tlsCert, tlsKey    string
	insecure               bool
	clientIndex, examples  int
	epsilon, delta, lr     float64
	dim                    int
	seed                   uint64
	giveUpAfter            time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "127.0.0.1:7070", "the federation server")
	flag.StringVar(&o.name, "name", "", "this client's name (default: sdk-<index>, or the certificate's subject)")
	flag.StringVar(&o.stateDir, "state-dir", "", "where the privacy ledger and key shares are kept (required)")
	flag.StringVar(&o.ca, "ca", "", "the federation's CA certificate (TLS)")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "this client's certificate (TLS)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "this client's key (TLS)")
	flag.BoolVar(&o.insecure, "insecure", false, "plaintext gRPC (tests on a trusted network only)")
	flag.IntVar(&o.clientIndex, "client-index", 0, "seeds this client's synthetic data")
	flag.IntVar(&o.examples, "examples", 500, "local examples (a fifth more are the local test set)")
	flag.IntVar(&o.dim, "dim", 8, "features (the server's model: mlp, input dim, output 1)")
	flag.Float64Var(&o.epsilon, "epsilon", 8, "privacy budget ε over all rounds")
	flag.Float64Var(&o.delta, "delta", 1e-5, "δ of the budget")
	flag.Float64Var(&o.lr, "lr", 0.5, "learning rate of the local SGD")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the synthetic data")
	flag.DurationVar(&o.giveUpAfter, "give-up-after", time.Minute, "stop once the server has been unreachable this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, o, client.Config{}); err != nil {
		fmt.Fprintln(os.Stderr, "customtrainer:", err)
		os.Exit(1)
	}
}

// run joins the federation with the custom trainer and reports the ε spent. base carries
// transport settings a caller fixes (a test's in-memory dialer).
func run(ctx context.Context, w io.Writer, o options, base client.Config) error {
	if o.stateDir == "" {
		return errors.New("--state-dir is required: the privacy ledger lives there")
	}
	store, err := client.NewDirStore(o.stateDir)
	if err != nil {
		return err
	}
	account, err := client.OpenPrivacyAccount(store, &dp.Budget{Epsilon: o.epsilon, Delta: o.delta}, false)
	if err != nil {
		return err
	}
	defer account.Close()
	idx := uint64(o.clientIndex)
	x, y := syntheticData(o.examples, o.dim, idx, o.seed)
	tx, ty := syntheticData(o.examples/5, o.dim, idx, o.seed+1000)
	tr, err := newTrainer(account, o.lr, x, y, tx, ty)
	if err != nil {
		return err
	}
	cfg := base
	cfg.Server, cfg.Name, cfg.Store, cfg.CommitteeEligible, cfg.GiveUpAfter = o.server, o.name, store, true, o.giveUpAfter
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Party.RequireSecureAggregation = true
	if err := transport(&cfg, o); err != nil {
		return err
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("sdk-%d", o.clientIndex)
	}
	var tally client.Tally
	cfg.Tally = &tally
	if err := client.Run(ctx, cfg, tr); err != nil {
		return err
	}
	eps, delta := account.Ledger().Spent()
	fmt.Fprintf(w, "%s: %s; ε spent %.4g at δ = %g; ledger %s\n", cfg.Name, tally, eps, delta, account.Ledger().Where())
	return nil
}

// transport sets TLS, and the certificate as the secure-aggregation identity, or plaintext.
func transport(cfg *client.Config, o options) error {
	if cfg.DialOptions != nil {
		return nil // a caller's own dialer, with its own credentials
	}
	if o.insecure {
		cfg.Insecure = true
		return nil
	}
	tc, err := client.TLSConfig(o.ca, o.tlsCert, o.tlsKey)
	if err != nil {
		return fmt.Errorf("TLS (--ca, --tls-cert, --tls-key, or --insecure): %w", err)
	}
	cert := tc.Certificates[0]
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("--tls-key cannot sign")
	}
	if cfg.Party.Signer, err = secagg.NewSigner(cert.Certificate[0], key); err != nil {
		return err
	}
	pem, err := os.ReadFile(o.ca)
	if err != nil {
		return err
	}
	if cfg.Party.Verifier, err = secagg.NewVerifierFromPEM(pem, nil); err != nil {
		return err
	}
	cfg.TLS = tc
	if o.name == "" {
		cfg.Name = tc.Certificates[0].Leaf.Subject.CommonName
	}
	return nil
}
