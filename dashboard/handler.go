package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

//go:embed web
var web embed.FS

// Config configures the dashboard's HTTP handler.
type Config struct {
	Source Source
	// Token, when set, is the operator credential every request must present: as a bearer
	// token (Authorization: Bearer TOKEN, for scripts) or as the password of HTTP basic
	// authentication with any user name (browsers ask for it).
	Token string
	// MinInterval is the shortest time between two states sent on an event stream
	// (default 250ms); Refresh is how often a stream sends the state without a change, so
	// that liveness ("last seen") stays current (default 5s).
	MinInterval, Refresh time.Duration
	// Logger receives failures to read the source (default: slog's default).
	Logger *slog.Logger
}

// Handler serves the dashboard: the page and its assets, the state as JSON, the event
// stream and the checkpoints. It answers GET and HEAD only.
type Handler struct {
	cfg    Config
	mux    *http.ServeMux
	assets fs.FS
}

// New returns the dashboard's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Source == nil {
		return nil, errors.New("dashboard: no source")
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = 250 * time.Millisecond
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	assets, err := fs.Sub(web, "web")
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), assets: assets}
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))
	h.mux.HandleFunc("GET /api/status", h.status)
	h.mux.HandleFunc("GET /api/events", h.events)
	h.mux.HandleFunc("GET /checkpoints/{name}", h.checkpoint)
	return h, nil
}

// The page loads only its own script and styles, and may connect only to its origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="confide dashboard", charset="UTF-8"`)
		http.Error(w, "the dashboard needs its operator token: as the password (any user name), or as Authorization: Bearer TOKEN", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized checks the operator token in constant time.
func (h *Handler) authorized(r *http.Request) bool {
	if h.cfg.Token == "" {
		return true
	}
	given := ""
	if _, pass, ok := r.BasicAuth(); ok {
		given = pass
	} else if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		given = t
	}
	return subtle.ConstantTimeCompare([]byte(given), []byte(h.cfg.Token)) == 1
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.ServeFileFS(w, r, h.assets, "index.html")
}

// snapshot reads the source and lists the checkpoints.
func (h *Handler) snapshot(ctx context.Context) (Snapshot, error) {
	s, err := h.cfg.Source.Snapshot(ctx)
	if err != nil {
		return s, err
	}
	s.Checkpoints = []Checkpoint{}
	if s.CheckpointDir == "" {
		return s, nil
	}
	entries, err := os.ReadDir(s.CheckpointDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.cfg.Logger.Warn("dashboard: checkpoint directory", "dir", s.CheckpointDir, "err", err)
		}
		return s, nil
	}
	for _, e := range entries {
		if !checkpointName(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		s.Checkpoints = append(s.Checkpoints, Checkpoint{Name: e.Name(), Bytes: info.Size(), Modified: info.ModTime().UTC().Format(time.RFC3339)})
	}
	return s, nil
}

// checkpointName accepts the model files of a checkpoint directory: a plain file name
// ending in .confide, not hidden (the store's temporary files are).
func checkpointName(name string) bool {
	return strings.HasSuffix(name, ".confide") && !strings.HasPrefix(name, ".") && !strings.ContainsAny(name, `/\`) && fs.ValidPath(name)
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	s, err := h.snapshot(r.Context())
	if err != nil {
		http.Error(w, "state unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if s.History == nil {
		s.History = []Round{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s)
}

// events streams the state as server-sent events: "status" (the snapshot without the
// rounds) on connecting, after changes (at most every MinInterval) and every Refresh; and
// "round" for each round record that is new or changed since the stream last sent it.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	changes := h.cfg.Source.Watch(ctx)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return
	}
	var sentRevision uint64
	send := func() error {
		s, err := h.snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.cfg.Logger.Warn("dashboard: reading the state", "err", err)
			}
			return nil // try again at the next change
		}
		rounds := s.History
		s.History = nil
		if err := writeEvent(w, "status", s); err != nil {
			return err
		}
		next := sentRevision
		for _, rd := range rounds {
			if rd.Revision > sentRevision {
				if err := writeEvent(w, "round", rd); err != nil {
					return err
				}
				next = max(next, rd.Revision)
			}
		}
		sentRevision = next
		fl.Flush()
		return nil
	}
	if send() != nil {
		return
	}
	refresh := time.NewTicker(h.cfg.Refresh)
	defer refresh.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
		case <-refresh.C:
		}
		if wait := time.Until(last.Add(h.cfg.MinInterval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		if send() != nil {
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !checkpointName(name) {
		http.Error(w, "no such checkpoint", http.StatusNotFound)
		return
	}
	s, err := h.cfg.Source.Snapshot(r.Context())
	if err != nil || s.CheckpointDir == "" {
		http.Error(w, "no checkpoints", http.StatusNotFound)
		return
	}
	// Opened under the directory: a name cannot reach outside it, through links either.
	root, err := os.OpenRoot(s.CheckpointDir)
	if err != nil {
		http.Error(w, "no checkpoints", http.StatusNotFound)
		return
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		http.Error(w, "no such checkpoint", http.StatusNotFound)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		http.Error(w, "no such checkpoint", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	http.ServeContent(w, r, name, info.ModTime(), f)
}
