package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confide-fl/confide/dashboard"
)

// source is a dashboard.Source the tests change by hand.
type source struct {
	dashboard.Broadcast
	mu   sync.Mutex
	snap dashboard.Snapshot
}

func (s *source) Snapshot(context.Context) (dashboard.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.snap
	c.History = append([]dashboard.Round(nil), s.snap.History...)
	return c, nil
}

func (s *source) addRound(r dashboard.Round) {
	s.mu.Lock()
	r.Revision = uint64(len(s.snap.History) + 1)
	s.snap.History = append(s.snap.History, r)
	s.snap.Round = r.Round
	s.mu.Unlock()
	s.Notify()
}

func newServer(t *testing.T, cfg dashboard.Config) (*httptest.Server, *source) {
	t.Helper()
	src := &source{snap: dashboard.Snapshot{Kind: "server", State: "fit", Rounds: 3, Clock: "wall"}}
	cfg.Source = src
	h, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, src
}

func get(t *testing.T, url string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestOperatorTokenIsRequired(t *testing.T) {
	ts, _ := newServer(t, dashboard.Config{Token: "s3cret"})
	basic := func(user, pass string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header
	}
	for _, c := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"none", nil, http.StatusUnauthorized},
		{"bearer", http.Header{"Authorization": {"Bearer s3cret"}}, http.StatusOK},
		{"wrong bearer", http.Header{"Authorization": {"Bearer s3cre"}}, http.StatusUnauthorized},
		{"basic password", basic("operator", "s3cret"), http.StatusOK},
		{"basic wrong password", basic("s3cret", "x"), http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/", "/api/status", "/static/app.js", "/checkpoints/latest.confide"} {
				resp := get(t, ts.URL+path, c.header)
				got := resp.StatusCode
				if c.want == http.StatusOK && got == http.StatusNotFound && strings.HasPrefix(path, "/checkpoints/") {
					got = http.StatusOK // authorised; there are no checkpoints
				}
				if got != c.want {
					t.Errorf("GET %s: %s, want %d", path, resp.Status, c.want)
				}
				if got == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("GET %s: 401 without a Basic challenge: browsers would not ask for the token", path)
				}
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	ts, _ := newServer(t, dashboard.Config{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req, _ := http.NewRequest(m, ts.URL+"/api/status", strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %s, want 405", m, resp.Status)
		}
	}
}

// TestPageIsSelfContained checks that the page loads nothing from another origin and that
// its policy forbids it.
func TestPageIsSelfContained(t *testing.T) {
	ts, _ := newServer(t, dashboard.Config{})
	resp := get(t, ts.URL+"/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	page, _ := io.ReadAll(resp.Body)
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//|url\(\s*['"]?(https?:)?//|@import`)
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		body, _ := io.ReadAll(get(t, ts.URL+path, nil).Body)
		if m := external.Find(body); m != nil {
			t.Errorf("%s refers to another origin: %q", path, m)
		}
	}
	for _, asset := range regexp.MustCompile(`(?:src|href)="(static/[^"]+)"`).FindAllSubmatch(page, -1) {
		if r := get(t, ts.URL+"/"+string(asset[1]), nil); r.StatusCode != http.StatusOK {
			t.Errorf("asset %s: %s", asset[1], r.Status)
		}
	}
}

// event is one server-sent event.
type event struct{ name, data string }

func readEvents(t *testing.T, r *bufio.Reader, n int) []event {
	t.Helper()
	var out []event
	var cur event
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream after %d events: %v", len(out), err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && cur.name != "":
			out = append(out, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

// TestEventStreamSendsChangedRoundsOnce checks the stream's protocol: the state and every
// round on connecting, then after a change the state and only the new round.
func TestEventStreamSendsChangedRoundsOnce(t *testing.T) {
	ts, src := newServer(t, dashboard.Config{MinInterval: time.Millisecond, Refresh: time.Hour})
	src.addRound(dashboard.Round{Round: 1, Contributors: 4})
	src.addRound(dashboard.Round{Round: 2, Contributors: 3})
	resp := get(t, ts.URL+"/api/events", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	evs := readEvents(t, r, 3)
	if evs[0].name != "status" || evs[1].name != "round" || evs[2].name != "round" {
		t.Fatalf("first events %+v: want status, round, round", evs)
	}
	var st dashboard.Snapshot
	if err := json.Unmarshal([]byte(evs[0].data), &st); err != nil || st.State != "fit" || st.Round != 2 || len(st.History) != 0 {
		t.Fatalf("status %s (%v): want state fit, round 2, no history inline", evs[0].data, err)
	}
	src.addRound(dashboard.Round{Round: 3, Contributors: 4})
	evs = readEvents(t, r, 2)
	var rd dashboard.Round
	if evs[0].name != "status" || evs[1].name != "round" || json.Unmarshal([]byte(evs[1].data), &rd) != nil || rd.Round != 3 {
		t.Fatalf("after round 3: %+v, want status and round 3 only", evs)
	}
}

func TestCheckpointDownloads(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.confide")
	for name, body := range map[string]string{"round-0001.confide": "model one", ".latest.confide.tmp1": "partial", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link.confide")); err != nil {
		t.Fatal(err)
	}
	ts, src := newServer(t, dashboard.Config{})
	src.snap.CheckpointDir = dir

	var st dashboard.Snapshot
	if err := json.NewDecoder(get(t, ts.URL+"/api/status", nil).Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Checkpoints) != 1 || st.Checkpoints[0].Name != "round-0001.confide" || st.Checkpoints[0].Bytes != 9 {
		t.Errorf("checkpoints listed: %+v, want round-0001.confide only", st.Checkpoints)
	}
	resp := get(t, ts.URL+"/checkpoints/round-0001.confide", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "model one" || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("download: %s %q %q", resp.Status, body, resp.Header.Get("Content-Disposition"))
	}
	for _, path := range []string{"notes.txt", ".latest.confide.tmp1", "link.confide", "..%2Fsecret.confide", "%2e%2e%2fsecret.confide", "missing.confide"} {
		resp := get(t, ts.URL+"/checkpoints/"+path, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "not yours") {
			t.Errorf("GET /checkpoints/%s: %s %q, want 404", path, resp.Status, body)
		}
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:80": true, "[::1]:9000": true, "127.0.0.2:1": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.1:80": false, "[::]:80": false, "example.org:80": false, "nonsense": false,
	} {
		if got := dashboard.Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
