package sim

import "github.com/confide-fl/confide/server"

// tellLive feeds the run's dashboard source (Options.Live) a notice of the in-memory
// network, on the goroutine that steps the coordinator. Round traffic is the recorder's
// (each task's bytes counted for the task's round, as in rounds.csv); a run that stops at
// its target accuracy says so, since the coordinator itself never finishes.
func (n *memNet) tellLive(no server.Notice) {
	l := n.r.opts.Live
	if l == nil {
		return
	}
	if _, ok := no.(server.RoundStarted); ok && n.r.cfg.ResultsDir != "-" {
		l.SetCheckpointDir(n.r.resultsDir())
	}
	l.Notice(no, n.coord)
	switch no.(type) {
	case server.RoundFinished, server.Finished:
		for _, row := range n.r.rec.close() {
			l.SetTraffic(uint64(row.Round), row.BytesUp, row.BytesDown)
		}
		if n.r.eval.targetRound() > 0 {
			l.Stopped("target accuracy reached")
		}
	}
}
