package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A Join may take over an identity's session only when that session is not live: its
// connection closed, or it has been silent for longer than the client timeout. The same
// connection may always join again.
func TestSessionTakeoverOnlyOfSessionsThatAreNotLive(t *testing.T) {
	const idle = 30 * time.Second
	old, other := conn{id: 1, addr: "10.0.0.1:5000"}, conn{id: 2, addr: "10.0.0.1:5001"}
	for _, tc := range []struct {
		name      string
		oldConn   conn
		closed    bool
		silent    time.Duration
		joinOver  conn
		maxClient int
		code      codes.Code
	}{
		{"same-connection", old, false, 0, old, 1, codes.OK},
		{"live-elsewhere", old, false, idle - time.Second, other, 1, codes.AlreadyExists},
		{"connection-closed", old, true, 0, other, 1, codes.OK},
		{"silent-past-the-client-timeout", old, false, idle + time.Second, other, 1, codes.OK},
		{"untracked-connection-live", conn{}, false, time.Second, other, 1, codes.AlreadyExists},
		{"untracked-connection-silent", conn{}, false, idle + time.Second, other, 1, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			st := newSessionTable(idle)
			st.now = func() time.Time { return now }
			st.setOpen(old.id, true)
			st.setOpen(other.id, true)
			token := st.start("alice", tc.oldConn)
			if tc.closed {
				st.setOpen(tc.oldConn.id, false)
			}
			now = now.Add(tc.silent)
			err := st.admit("alice", tc.joinOver, tc.maxClient)
			if status.Code(err) != tc.code {
				t.Fatalf("admit: %v, want %v", err, tc.code)
			}
			if err != nil {
				return
			}
			st.start("alice", tc.joinOver)
			if _, ok := st.lookup(token, tc.joinOver); ok {
				t.Fatal("the old token still works after the takeover")
			}
		})
	}
	t.Run("full", func(t *testing.T) {
		st := newSessionTable(idle)
		st.start("alice", old)
		if err := st.admit("bob", other, 1); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("admit a second identity into a federation of 1: %v", err)
		}
		st.end("alice")
		if err := st.admit("bob", other, 1); err != nil {
			t.Fatalf("admit after the first identity left: %v", err)
		}
	})
}
