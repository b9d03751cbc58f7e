// Command confide is the Confide command-line tool: centralised and federated training,
// benchmarks, privacy accounting, the simulator, the aggregation server and the client.
//
// Every flag can also be set in the config file (--config, YAML) or in the environment as
// CONFIDE_<FLAG> (dashes become underscores; for subcommands CONFIDE_<FLAG> as well, e.g.
// CONFIDE_EPOCHS=3). Flags win over the environment, which wins over the config file.
package main

import (
	"errors"
	"os"
)

func main() {
	g := &globalOptions{}
	if err := newRootCmdWith(g).Execute(); err != nil {
		var ee *exitError
		code := 1
		if errors.As(err, &ee) {
			code = ee.code
		}
		g.reportError(os.Stderr, err, code)
		os.Exit(code)
	}
}

// exitError carries a specific process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
