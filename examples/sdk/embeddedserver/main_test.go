package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// TestEmbeddedServerWithOwnStrategy runs the program's federation over an in-memory
// connection: every round is aggregated by trustRegion (its step within the radius, the
// metric it adds in the round record) and the central accuracy rises.
func TestEmbeddedServerWithOwnStrategy(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	dial := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, &out, options{clients: 3, rounds: 6, radius: 0.5, seed: 1}, lis, "bufnet", dial); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log(text)
	if n := strings.Count(text, "devices, server step"); n != 6 {
		t.Errorf("%d rounds aggregated by the strategy, want 6", n)
	}
	if !strings.Contains(text, "capped true") {
		t.Error("no step was capped at radius 0.5")
	}
	var first, last string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "accuracy") {
			if first == "" {
				first = line
			}
			last = line
		}
	}
	acc := func(line string) string { return line[strings.LastIndex(line, " ")+1:] }
	if first == "" || acc(last) <= acc(first) {
		t.Errorf("accuracy from %q to %q, want a rise", first, last)
	}
}
