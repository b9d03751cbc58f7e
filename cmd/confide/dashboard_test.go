package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/dashboard"
	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/server"
)

func TestDashboardOptionsNeedATokenWhereOthersCanReach(t *testing.T) {
	server := dashboardOptions{addrFlag: "--dashboard", tokenFlag: "--dashboard-token", requireToken: true}
	sim := dashboardOptions{addrFlag: "--serve", tokenFlag: "--serve-token"}
	for _, c := range []struct {
		name        string
		o           dashboardOptions
		addr, token string
		want        string // a fragment of the usage error; empty: accepted
	}{
		{"server off", server, "", "", ""},
		{"server on loopback without token", server, "127.0.0.1:8080", "", "CONFIDE_DASHBOARD_TOKEN"},
		{"server with token", server, "0.0.0.0:8080", "s", ""},
		{"sim on loopback", sim, "127.0.0.1:8080", "", ""},
		{"sim on every interface without token", sim, ":8080", "", "--serve-token"},
		{"sim on every interface with token", sim, "0.0.0.0:8080", "s", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.addr, o.token = c.addr, c.token
			err := o.check()
			var ee *exitError
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (!errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want exit code 2 naming %s", err, c.want)
			}
		})
	}
}

// TestSimServeShowsTheRun runs `confide sim --serve` on a small federation and reads its
// dashboard: it follows the run to the end, offers the final model, and stays up until
// the command is interrupted.
func TestSimServeShowsTheRun(t *testing.T) {
	cfg, err := loadSimConfig(filepath.Join("..", "..", "examples", "synthetic.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rounds, cfg.Clients, cfg.ClientsPerRound, cfg.Training.Epochs, cfg.Evaluation.Every = 3, 10, 4, 1, 1
	cfg.ResultsDir, cfg.Plots = t.TempDir(), new(false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out lockedBuffer // written by runSim's goroutine while the test reads it
	done := make(chan error, 1)
	serve := dashboardOptions{addr: addr, token: "let-me-in", addrFlag: "--serve", tokenFlag: "--serve-token"}
	go func() { done <- runSim(ctx, &globalOptions{output: "json", logFormat: "text"}, &out, cfg, 0, serve) }()

	status := func(token string) (dashboard.Snapshot, int) {
		var s dashboard.Snapshot
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return s, 0
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			json.NewDecoder(resp.Body).Decode(&s)
		}
		return s, resp.StatusCode
	}
	deadline := time.Now().Add(2 * time.Minute)
	var s dashboard.Snapshot
	for {
		var code int
		s, code = status("let-me-in")
		if code == http.StatusOK && s.State == "finished" && len(s.Checkpoints) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("confide sim returned before it was interrupted: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard never showed the finished run: %+v (HTTP %d)", s, code)
		}
		time.Sleep(50 * time.Millisecond) // polling a process from outside, as a browser would
	}
	if s.Kind != "simulation" || s.Name != cfg.Name || s.Round != 3 || len(s.History) != 3 || s.Checkpoints[0].Name != "model.confide" {
		t.Errorf("dashboard %+v", s)
	}
	if _, code := status("wrong"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token got HTTP %d", code)
	}
	// The dashboard shows the run finished a moment before the command prints its
	// summary; the summary must come before the command waits for the interrupt.
	var sum struct{ Rounds int }
	for summaryBy := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := json.Unmarshal([]byte(out.String()), &sum)
		if err == nil && sum.Rounds == 3 {
			break
		}
		if time.Now().After(summaryBy) {
			t.Fatalf("no summary of 3 rounds printed while the dashboard serves the finished run: %q (%v)", out.String(), err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupting the finished run's dashboard: %v", err)
	}
	if _, code := status("let-me-in"); code != 0 {
		t.Errorf("the dashboard still answers (HTTP %d) after the command returned", code)
	}
}

// TestServerDashboardUsesTheServersTLS: the server's dashboard is HTTPS with the server's
// certificate; a browser holds no client certificate, so none is asked for, and the token
// is the credential.
func TestServerDashboardUsesTheServersTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ca.IssueServer("server", []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(dir, "server", cred); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err := server.TLSConfig(pki.CertFile(dir, "server"), pki.KeyFile(dir, "server"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	o := dashboardOptions{addr: "127.0.0.1:0", token: "op", addrFlag: "--dashboard", tokenFlag: "--dashboard-token", requireToken: true}
	srv, err := o.start(&globalOptions{logFormat: "text"}, server.NewLive(server.LiveConfig{}), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("dashboard at %s, want https", srv.URL())
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	browser := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"api/status", nil)
	req.SetBasicAuth("operator", "op")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("a browser without a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("HTTP %s, TLS %v", resp.Status, resp.TLS != nil)
	}
	if resp, err := http.Get(strings.Replace(srv.URL(), "https", "http", 1)); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plaintext HTTP answered %s", resp.Status)
		}
	}
}
