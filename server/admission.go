package server

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// joinLimits rate-limits Joins per identity and per peer address (token buckets from
// golang.org/x/time/rate), so a client or a host cannot churn sessions to grow the
// server's state or crowd others out. Buckets idle long enough to have refilled are
// dropped, so the limiter's own memory stays bounded by the recently active keys.
type joinLimits struct {
	perID, perPeer rate.Limit
	burstID        int
	burstPeer      int

	mu      sync.Mutex
	ids     map[string]*bucket
	peers   map[string]*bucket
	sweepAt time.Time
}

type bucket struct {
	l    *rate.Limiter
	used time.Time
}

func newJoinLimits(cfg ServiceConfig) *joinLimits {
	return &joinLimits{
		perID: rate.Limit(cfg.JoinRate), burstID: cfg.JoinBurst, perPeer: rate.Limit(cfg.PeerJoinRate), burstPeer: cfg.PeerJoinBurst,
		ids: map[string]*bucket{}, peers: map[string]*bucket{},
	}
}

// allowPeer takes one Join attempt from the peer address's bucket.
func (j *joinLimits) allowPeer(peer string) error {
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sweep(now)
	if !j.take(j.peers, peer, j.perPeer, j.burstPeer, now) {
		return status.Errorf(codes.ResourceExhausted, "too many joins from %s (at most %g a second): retry later", peer, float64(j.perPeer))
	}
	return nil
}

// allowIdentity takes one session start from the identity's bucket (joins the server
// refuses anyway, e.g. while another session is live, do not count).
func (j *joinLimits) allowIdentity(id string) error {
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.take(j.ids, id, j.perID, j.burstID, now) {
		return status.Errorf(codes.ResourceExhausted, "client %q joins too often (at most %g a second, bursts of %d): retry later", id, float64(j.perID), j.burstID)
	}
	return nil
}

func (j *joinLimits) take(m map[string]*bucket, key string, r rate.Limit, burst int, now time.Time) bool {
	b, ok := m[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(r, burst)}
		m[key] = b
	}
	b.used = now
	return b.l.AllowN(now, 1)
}

// sweep drops buckets unused for longer than a full refill (so a dropped bucket would
// have been full anyway), scanning at most once a minute or once a refill time.
func (j *joinLimits) sweep(now time.Time) {
	if now.Before(j.sweepAt) {
		return
	}
	refill := time.Duration(float64(j.burstID)/float64(j.perID)*float64(time.Second)) + time.Second
	j.sweepAt = now.Add(min(time.Minute, refill))
	for _, set := range []struct {
		m     map[string]*bucket
		r     rate.Limit
		burst int
	}{{j.ids, j.perID, j.burstID}, {j.peers, j.perPeer, j.burstPeer}} {
		full := time.Duration(float64(set.burst)/float64(set.r)*float64(time.Second)) + time.Second
		for k, b := range set.m {
			if now.Sub(b.used) > full {
				delete(set.m, k)
			}
		}
	}
}

// peerHost is the host of a peer address (the port changes with every connection).
func peerHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// forget drops what the service keeps for a client that left or whose registration
// expired: its session and its mailbox.
func (s *Service) forget(id string) {
	s.sessions.end(id)
	s.mu.Lock()
	if mb, ok := s.mail[id]; ok {
		close(mb.wake)
		delete(s.mail, id)
	}
	s.mu.Unlock()
}
