package server_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// transcript renders what the coordinator output, one line per item, without payload bytes.
func transcript(n *network, log *strings.Builder) func(server.Event) {
	var step func(server.Event)
	step = func(ev server.Event) {
		r, err := n.c.Step(ev)
		fmt.Fprintf(log, "> %T%s\n", ev, eventDetail(ev))
		if err != nil {
			fmt.Fprintf(log, "  error: %v\n", err)
		}
		for _, p := range r.Persist {
			fmt.Fprintf(log, "  persist %s\n", recordLine(p))
		}
		for _, e := range r.Send {
			fmt.Fprintf(log, "  send %s %s %v round %d blobs %d\n", e.To, e.Task.TaskId, e.Task.Kind, e.Task.Round, len(e.Task.Blobs))
			n.queue[e.To] = append(n.queue[e.To], e.Task)
		}
		for _, v := range r.Revoke {
			fmt.Fprintf(log, "  revoke %s %s\n", v.To, v.TaskID)
		}
		for _, x := range r.Notices {
			fmt.Fprintf(log, "  notice %s\n", noticeLine(x))
		}
		for _, w := range r.Work {
			fmt.Fprintf(log, "  work %T\n", w)
		}
		for _, w := range r.Work { // the driver's answers
			step(w.Run())
		}
	}
	return step
}

func eventDetail(ev server.Event) string {
	switch e := ev.(type) {
	case server.Join:
		return " " + e.ClientID
	case server.ResultIn:
		return fmt.Sprintf(" %s %s %v", e.ClientID, e.Result.TaskId, e.Result.Status)
	case server.Tick:
		return " " + e.Elapsed.String()
	case server.Heartbeat:
		return " " + e.ClientID
	case server.Aggregated:
		return fmt.Sprintf(" %s %s %q", e.ClientID, e.TaskID, e.Err)
	}
	return ""
}

func recordLine(r server.Record) string {
	switch r := r.(type) {
	case server.RoundRecord:
		return fmt.Sprintf("RoundRecord round %d failed %v contributors %v params[0] %.6f", r.Round, r.Failed, r.Contributors, r.Params[0])
	case server.PrivacyRecord:
		return fmt.Sprintf("PrivacyRecord %s round %d ε %.2f", r.ClientID, r.Round, r.Epsilon)
	case server.ClientRecord:
		return fmt.Sprintf("ClientRecord %s", r.ClientID)
	}
	return fmt.Sprintf("%T", r)
}

func noticeLine(n server.Notice) string {
	switch n := n.(type) {
	case server.RoundFinished:
		var f []string
		for _, x := range n.Failures {
			f = append(f, x.ClientID+":"+x.Kind.String())
		}
		return fmt.Sprintf("RoundFinished %d contributors %d failed %v failures %v", n.Round, n.Contributors, n.Failed, f)
	case server.PrivacySpent:
		return fmt.Sprintf("PrivacySpent %s %.2f", n.ClientID, n.Epsilon)
	}
	return fmt.Sprintf("%T %+v", n, n)
}

// TestGoldenPlainRounds pins the coordinator's full output for two plaintext rounds with a
// straggler that misses the first deadline, a duplicate result, and a late one.
func TestGoldenPlainRounds(t *testing.T) {
	trs := trainersFor("a", "b", "c")
	cfg := baseConfig(2, 2)
	cfg.Sampling.MinAvailable = 3
	c, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{t: t, c: c, parties: map[string]*client.Party{}, trainers: trs, queue: map[string][]*pb.Task{}, down: map[string]bool{}}
	for id, tr := range trs {
		n.parties[id], _ = client.NewParty(client.PartyConfig{ClientID: id, Noise: dp.NewDeterministicNoise(1), ShareStatistics: true, StatisticsNoiseMultiplier: 1e-9}, tr)
	}
	var log strings.Builder
	step := transcript(n, &log)
	for _, id := range []string{"a", "b", "c"} {
		step(server.Join{ClientID: id})
	}
	answer := func(id string) *pb.Result {
		task := n.queue[id][0]
		n.queue[id] = n.queue[id][1:]
		res, err := n.parties[id].Handle(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		step(server.ResultIn{ClientID: id, Result: res})
		return res
	}
	answer("a")
	dup := answer("b")
	step(server.ResultIn{ClientID: "b", Result: dup})
	for i := 0; i < 13; i++ { // c is alive but slow: the fit deadline (1m) passes
		for _, id := range []string{"a", "b", "c"} {
			step(server.Heartbeat{ClientID: id})
		}
		step(server.Tick{Elapsed: 5 * time.Second})
	}
	for _, id := range []string{"a", "b", "c"} {
		for len(n.queue[id]) > 0 {
			answer(id)
		}
	}
	lateTask := &pb.Result{TaskId: "fit-r1-3", Kind: pb.TaskKind_TASK_KIND_FIT, Round: 1, Status: pb.ResultStatus_RESULT_STATUS_OK}
	step(server.ResultIn{ClientID: "c", Result: lateTask})
	path := filepath.Join("testdata", "plain_rounds.golden")
	if *update {
		if err := os.WriteFile(path, []byte(log.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update)", err)
	}
	if got := log.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("transcript differs at line %d:\n got: %s\nwant: %s\n(run go test -run TestGolden -update if the change is intended)", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("transcript has %d lines, golden %d", len(gl), len(wl))
	}
}
