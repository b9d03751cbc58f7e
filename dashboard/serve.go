package dashboard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves a handler on its own listener, over TLS when given a configuration.
type Server struct {
	srv     *http.Server
	lis     net.Listener
	tls     bool
	stop    context.CancelFunc
	done    chan error
	once    sync.Once
	doneErr error
}

// Listen starts serving h on addr (host:port; port 0 picks a free one), over TLS with
// tlsConfig's certificate when it is not nil.
func Listen(addr string, h http.Handler, tlsConfig *tls.Config) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: listen %s: %w", addr, err)
	}
	// Event streams end with this context, so that Close does not wait for browsers.
	base, stop := context.WithCancel(context.Background())
	s := &Server{lis: lis, tls: tlsConfig != nil, stop: stop, done: make(chan error, 1),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}}
	go func() {
		var err error
		if tlsConfig != nil {
			s.srv.TLSConfig = tlsConfig.Clone()
			err = s.srv.ServeTLS(lis, "", "")
		} else {
			err = s.srv.Serve(lis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// URL is the dashboard's address for a browser.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.lis.Addr().String() + "/"
}

// Close ends the event streams and stops the server, waiting up to a few seconds for
// requests in flight. Closing again does nothing.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		s.doneErr = <-s.done
	})
	return s.doneErr
}

// Loopback reports whether addr (host:port) listens on the loopback interface only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
