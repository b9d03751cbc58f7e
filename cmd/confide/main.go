// Command confide is the Confide command-line tool: centralised and federated training,
// benchmarks, privacy accounting and auditing, the simulator, the aggregation server and the client.
//
// Every setting can also come from the config file (--config, YAML, snake_case keys with
// dashed spellings accepted: the flag names, or the sections of sim's and server's configs)
// or from the environment as CONFIDE_<SECTION>_<KEY> (CONFIDE_EPOCHS=3,
// CONFIDE_DP_NOISE_MULTIPLIER=1.1). Flags win over the environment, which wins over the
// config file. 'confide config reference' lists every key (docs/config.md).
//
// Exit codes: 0 success, 1 a runtime failure, 2 a usage or configuration error, 130
// interrupted (SIGINT or SIGTERM: the command finishes or abandons its current step and
// keeps what it produced; a second signal exits at once).
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	g := &globalOptions{}
	ctx, interrupted := interruptible(g)
	err := newRootCmdWith(g).ExecuteContext(ctx)
	if errors.Is(err, context.Canceled) {
		// Commands watch the signals themselves too (signal.NotifyContext), and one may
		// have returned before the handler below recorded the signal: wait for it (it
		// cancels ctx after recording), briefly, should the cancellation have come from
		// elsewhere.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	code := exitCode(err, interrupted())
	if err != nil {
		if code == exitInterrupted && errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		g.reportError(os.Stderr, err, code)
	}
	os.Exit(code)
}

// exitCode maps a command's outcome to the process exit status.
func exitCode(err error, interrupted bool) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case interrupted:
		return exitInterrupted
	case err != nil:
		return exitFailure
	}
	return 0
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM, and whether one
// arrived. A second signal exits at once. It says so on stderr in g's log format.
func interruptible(g *globalOptions) (context.Context, func() bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var got atomic.Bool
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		got.Store(true)
		g.notice(os.Stderr, "interrupted; finishing the current step and keeping what was produced (interrupt again to exit at once)")
		cancel()
		<-sig
		g.notice(os.Stderr, "interrupted again; exiting")
		os.Exit(exitInterrupted)
	}()
	return ctx, got.Load
}

// exitError carries a specific process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
