package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/confide-fl/confide/dashboard"
)

// dashboardOptions are where a command serves its dashboard and the operator token it asks
// for: `confide server --dashboard ADDR --dashboard-token TOKEN`, `confide sim --serve
// ADDR [--serve-token TOKEN]`.
type dashboardOptions struct {
	addr, token string
	// addrFlag and tokenFlag name the options in messages.
	addrFlag, tokenFlag string
	// requireToken: refuse to serve without a token, whatever the address (the server's
	// dashboard shows a federation of other people's clients).
	requireToken bool
}

// check validates the options before any work starts (exit code 2 on a usage error).
func (o dashboardOptions) check() error {
	if o.addr == "" {
		return nil
	}
	switch {
	case o.token == "" && o.requireToken:
		return &exitError{code: 2, err: fmt.Errorf("%s needs an operator token: set %s (or CONFIDE_%s), which the browser asks for as the password, or scripts send as 'Authorization: Bearer TOKEN'",
			o.addrFlag, o.tokenFlag, envName(o.tokenFlag))}
	case o.token == "" && !dashboard.Loopback(o.addr):
		return &exitError{code: 2, err: fmt.Errorf("%s %s listens beyond this machine: set %s (or CONFIDE_%s) so that only the operator can read it, or serve on a loopback address such as 127.0.0.1:8080",
			o.addrFlag, o.addr, o.tokenFlag, envName(o.tokenFlag))}
	}
	return nil
}

func envName(flag string) string {
	b := []byte(flag[2:])
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// start serves src's dashboard. With tlsConfig (the server's mutual-TLS configuration) it
// serves HTTPS with the server's certificate but asks for no client certificate: an
// operator's browser holds none, and the token is the credential.
func (o dashboardOptions) start(g *globalOptions, src dashboard.Source, tlsConfig *tls.Config) (*dashboard.Server, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	h, err := dashboard.New(dashboard.Config{Source: src, Token: o.token, Logger: slog.Default()})
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if tlsConfig != nil {
		tc = tlsConfig.Clone()
		tc.ClientAuth, tc.ClientCAs = tls.NoClientCert, nil
	} else if !dashboard.Loopback(o.addr) {
		slog.Warn("the dashboard is served in plaintext HTTP beyond this machine: its token and pages cross the network unencrypted (serve the server with TLS, or on a loopback address)", "addr", o.addr)
	}
	srv, err := dashboard.Listen(o.addr, h, tc)
	if err != nil {
		return nil, fmt.Errorf("%w (pick another %s address)", err, o.addrFlag)
	}
	slog.Info("dashboard listening", "url", srv.URL(), "tls", tc != nil, "token", o.token != "")
	g.announce(os.Stderr, "dashboard: %s", srv.URL())
	return srv, nil
}

// serveUntilInterrupted keeps a finished run's dashboard up until the command is
// interrupted, so that its final state stays readable; the interruption is no error.
func serveUntilInterrupted(ctx context.Context, g *globalOptions, srv *dashboard.Server) error {
	if srv == nil {
		return nil
	}
	g.announce(os.Stderr, "the run is over; its dashboard stays at %s until interrupted (Ctrl-C)", srv.URL())
	<-ctx.Done()
	if err := srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
