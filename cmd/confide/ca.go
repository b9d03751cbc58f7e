package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/server"
)

func init() { registerCommand(newCACmd) }

const day = 24 * time.Hour

type caResult struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"` // ca, client or server
	Cert        string    `json:"cert"`
	Key         string    `json:"key"`
	CACert      string    `json:"ca_cert,omitempty"`
	Hosts       []string  `json:"hosts,omitempty"`
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"sha256_fingerprint"`
}

func newCACmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Run the federation's certificate authority: create it, issue server and client certificates",
		Long: `The federation's certificate authority (CA), run by its operator: the server admits
only clients with a certificate the CA issued, and takes each client's identity from its
certificate (the subject common name), so the CA must issue one identity per real client.

  confide ca init                                   creates pki/ca.crt and pki/ca.key
  confide ca issue --server --name server --host fl.example.org
  confide ca issue --name hospital-a                pki/hospital-a.crt and .key

Give the server its certificate, its key and ca.crt (--tls-cert, --tls-key, --client-ca),
and each client its own certificate and key and ca.crt (--tls-cert, --tls-key, --ca). Keep
ca.key offline: whoever holds it can mint client identities. Keys are written 0600 and no
file is ever overwritten.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAInitCmd(g), newCAIssueCmd(g))
	return cmd
}

func newCAInitCmd(g *globalOptions) *cobra.Command {
	var dir, name string
	var days int
	cmd := &cobra.Command{
		Use:     "init",
		Short:   "Create the federation's CA: DIR/ca.crt and DIR/ca.key",
		Example: `  confide ca init --dir pki`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--days %d: the CA must be valid for at least 1 day", days)}
			}
			if name == "" {
				// A name of its own, so that a client holding another federation's
				// certificate is told which CA the server wants.
				var b [4]byte
				rand.Read(b[:])
				name = "Confide federation CA " + hex.EncodeToString(b[:])
			}
			if err := refuseExisting(dir, "ca", "the federation's CA is already there; use another --dir, or delete DIR to start over (then no certificate it issued is trusted any more)"); err != nil {
				return err
			}
			ca, err := pki.NewCA(name, time.Duration(days)*day, time.Now())
			if err != nil {
				return err
			}
			if err := pki.WriteFiles(dir, "ca", ca.Credential); err != nil {
				return existsHint(err, "the federation's CA is already there; use another --dir")
			}
			res := caResult{Name: name, Kind: "ca", Cert: pki.CertFile(dir, "ca"), Key: pki.KeyFile(dir, "ca"), NotAfter: ca.Cert.NotAfter, Fingerprint: pki.Fingerprint(ca.Cert)}
			return g.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "created the federation CA %q, valid until %s\n", name, res.NotAfter.Format(time.DateOnly))
				fmt.Fprintf(w, "  %s  the CA certificate: give it to the server (--client-ca) and every client (--ca)\n", res.Cert)
				fmt.Fprintf(w, "  %s  its key (0600): keep it offline; whoever holds it can mint client identities\n", res.Key)
				fmt.Fprintf(w, "  SHA-256 fingerprint %s (compare it when copying ca.crt)\n", res.Fingerprint)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "pki", "directory of the CA (created 0700)")
	f.StringVar(&name, "name", "", `the CA's subject common name (default "Confide federation CA <random id>")`)
	f.IntVar(&days, "days", 3650, "validity of the CA certificate in days")
	return cmd
}

func newCAIssueCmd(g *globalOptions) *cobra.Command {
	var dir, name string
	var hosts []string
	var isServer bool
	var days, count, first int
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a client certificate (subject CN = --name), or a server certificate with --server",
		Long: `Issue a certificate signed by the CA in --dir, written to DIR/NAME.crt and DIR/NAME.key (0600).

A client certificate names the client's identity in its subject common name (--name); the
server admits it under that name only, and only one session of it at a time. A server
certificate (--server) names the DNS names and IP addresses clients dial (--host, repeated
or comma-separated).`,
		Example: `  confide ca issue --dir pki --server --name server --host 127.0.0.1 --host localhost
  confide ca issue --dir pki --name client-0
  confide ca issue --dir pki --name client-%d --count 250 --first 250   # client-250…client-499, for 'confide client --virtual 250'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("first") && !cmd.Flags().Changed("count") {
				return &exitError{code: 2, err: errors.New("--first is the first index of --count certificates: add --count N, or drop --first")}
			}
			if cmd.Flags().Changed("count") {
				return issueClientFleet(g, cmd.OutOrStdout(), fleetIssue{dir: dir, pattern: name, first: first, count: count, days: days, server: isServer || len(hosts) > 0})
			}
			if name == "" {
				return &exitError{code: 2, err: errors.New("--name is required: the client's identity (e.g. --name client-0), or the server certificate's name with --server (e.g. --server --name server --host HOST)")}
			}
			if err := server.CheckClientName(name); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--name: %w", err)}
			}
			if name == "ca" {
				return &exitError{code: 2, err: errors.New(`--name ca: that is the CA's own file name in --dir; choose another name`)}
			}
			if isServer && len(hosts) == 0 {
				return &exitError{code: 2, err: errors.New("--server needs --host: the DNS names or IP addresses clients dial (e.g. --host 127.0.0.1 --host localhost, or --host fl.example.org)")}
			}
			if !isServer && len(hosts) > 0 {
				return &exitError{code: 2, err: errors.New("--host is for server certificates: add --server, or drop --host for a client certificate")}
			}
			if days < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--days %d: a certificate must be valid for at least 1 day", days)}
			}
			ca, err := loadCA(dir)
			if err != nil {
				return err
			}
			if err := refuseExisting(dir, name, "a certificate was already issued under this name; one identity per client: choose another --name, or delete both files to re-issue it"); err != nil {
				return err
			}
			validity, now := time.Duration(days)*day, time.Now()
			var cred pki.Credential
			kind := "client"
			if isServer {
				kind = "server"
				cred, err = ca.IssueServer(name, hosts, validity, now)
			} else {
				cred, err = ca.IssueClient(name, validity, now)
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("%w (lower --days, or create a new CA)", err)}
			}
			if err := pki.WriteFiles(dir, name, cred); err != nil {
				return existsHint(err, "choose another --name")
			}
			res := caResult{Name: name, Kind: kind, Cert: pki.CertFile(dir, name), Key: pki.KeyFile(dir, name), CACert: pki.CertFile(dir, "ca"),
				Hosts: hosts, NotAfter: cred.Cert.NotAfter, Fingerprint: pki.Fingerprint(cred.Cert)}
			return g.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				if isServer {
					fmt.Fprintf(w, "issued the server certificate %q for %v, valid until %s\n", name, hosts, res.NotAfter.Format(time.DateOnly))
					fmt.Fprintf(w, "  confide server --tls-cert %s --tls-key %s --client-ca %s\n", res.Cert, res.Key, res.CACert)
					return
				}
				fmt.Fprintf(w, "issued the client certificate of %q, valid until %s\n", name, res.NotAfter.Format(time.DateOnly))
				fmt.Fprintf(w, "  confide client --name %s --tls-cert %s --tls-key %s --ca %s\n", name, res.Cert, res.Key, res.CACert)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "pki", "directory of the CA (from confide ca init); the certificate is written there too")
	f.StringVar(&name, "name", "", "the client's identity (its certificate's subject CN), or the server certificate's name")
	f.BoolVar(&isServer, "server", false, "issue a server certificate (needs --host)")
	f.StringSliceVar(&hosts, "host", nil, "with --server: a DNS name or IP address clients dial (repeatable)")
	f.IntVar(&days, "days", 365, "validity in days (at most the CA's remaining validity)")
	f.IntVar(&count, "count", 0, "issue this many client certificates, for a fleet of virtual clients: --name is then a pattern with one %d (e.g. client-%d), filled with --first…--first+N-1")
	f.IntVar(&first, "first", 0, "with --count: the first index")
	return cmd
}

// loadCA reads the CA certificate and key from dir.
func loadCA(dir string) (*pki.CA, error) {
	certPEM, err := os.ReadFile(pki.CertFile(dir, "ca"))
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("no CA in --dir %s (%v): create one with 'confide ca init --dir %s', or point --dir at it", dir, err, dir)}
	}
	keyPEM, err := os.ReadFile(pki.KeyFile(dir, "ca"))
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("the CA key in --dir %s: %v (issuing needs ca.key beside ca.crt)", dir, err)}
	}
	ca, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA in --dir %s: %w", dir, err)
	}
	return ca, nil
}

// refuseExisting fails if DIR/base.crt or DIR/base.key exists, saying what to do.
func refuseExisting(dir, base, fix string) error {
	for _, p := range []string{pki.CertFile(dir, base), pki.KeyFile(dir, base)} {
		if _, err := os.Lstat(p); err == nil {
			return &exitError{code: 2, err: fmt.Errorf("%s exists: %s", p, fix)}
		}
	}
	return nil
}

func existsHint(err error, fix string) error {
	if errors.Is(err, pki.ErrExists) {
		return &exitError{code: 2, err: fmt.Errorf("%w: %s", err, fix)}
	}
	return err
}
