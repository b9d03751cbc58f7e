package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// helmModule is the Helm the tests run, at a version the Go module proxy serves here.
const helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.2"

// chartDir is the chart, relative to this package.
var chartDir = filepath.Join("helm", "confide")

// scratch is a directory for the whole test binary: the confide binary built once, Helm's
// own home directories.
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "confide-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	helmOnce sync.Once
	helmBin  string // the built Helm, in the scratch directory
	helmErr  error  // why Helm cannot run here (a skip outside CI)
)

// helm runs Helm with args and returns its stdout; err carries its stderr. The first call
// builds Helm into the scratch directory with go install (fetched from the module proxy
// once; its packages are then in the go command's cache, so later builds only link). It
// does not use go run -exec=echo to find a cached executable: on a cold cache that prints
// a path in the go command's temporary directory, removed when it exits. If the module
// cannot be fetched the test is skipped, except in CI, where it fails.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmOnce.Do(func() {
		bin := filepath.Join(scratch, "bin")
		cmd := exec.Command("go", "install", helmModule)
		cmd.Dir = scratch // outside this module: go install pkg@version ignores it anyway
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOBIN="+bin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			helmErr = fmt.Errorf("go install %s: %w\n%s", helmModule, err, stderr.String())
			return
		}
		helmBin = filepath.Join(bin, "helm")
		if runtime.GOOS == "windows" {
			helmBin += ".exe"
		}
		if st, err := os.Stat(helmBin); err != nil || st.IsDir() {
			helmErr = fmt.Errorf("go install %s made no executable %s", helmModule, helmBin)
		}
	})
	if helmErr != nil {
		if os.Getenv("CI") == "" && unfetchable(helmErr) {
			t.Skipf("Helm cannot be fetched here: %v", helmErr)
		}
		t.Fatal(helmErr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin, args...)
	// Helm's caches and config in the scratch directory, not the user's.
	home := filepath.Join(scratch, "helm")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// unfetchable says whether err is the go command failing to download a module (no proxy,
// no network), as opposed to Helm failing.
func unfetchable(err error) bool {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return true // no go command
	}
	msg := err.Error()
	for _, s := range []string{"dial tcp", "no such host", "i/o timeout", "connection refused", "GOPROXY", "GOFLAGS=-mod=mod", "module lookup disabled", "410 Gone", "404 Not Found"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

var (
	confideOnce sync.Once
	confideBin  string
	confideErr  error
)

// confide returns the confide binary built as the Dockerfile builds it (CGO_ENABLED=0,
// -trimpath), once per test binary.
func confide(t *testing.T) string {
	t.Helper()
	confideOnce.Do(func() {
		confideBin = filepath.Join(scratch, "confide")
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", confideBin, "./cmd/confide")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			confideErr = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/confide: %w\n%s", err, out)
		}
	})
	if confideErr != nil {
		t.Fatal(confideErr)
	}
	return confideBin
}
