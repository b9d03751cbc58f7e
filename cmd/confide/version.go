package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise the module
// version from the build info is used.
var version = ""

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of confide (with its VCS revision) and of the Go toolchain that built it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, rev := buildVersion()
			out := map[string]string{"version": v, "go": runtime.Version(), "revision": rev}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) { fmt.Fprintln(w, versionLine()) })
		},
	}
}

// buildVersion returns the module version (set at link time, or by `go install
// module@version`; "(devel)" for a build from a checkout) and the VCS revision, if known.
func buildVersion() (v, rev string) {
	v = version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v, rev
}

// versionLine is what `confide version` and `confide --version` print.
func versionLine() string {
	v, rev := buildVersion()
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev
	}
	return fmt.Sprintf("confide %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
