package onnxexport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/model"
)

// checkerScript runs the ONNX checker with full_check (strict shape and type inference:
// declared input and output shapes must agree with what the operators produce) on every
// file named on its command line, printing one line per file.
const checkerScript = `
import sys, onnx
failed = 0
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        print("ok", path)
    except Exception as e:
        failed += 1
        print("FAIL", path, str(e).replace("\n", " "))
sys.exit(1 if failed else 0)
`

// pythons are the interpreters tried for the onnx package: $CONFIDE_PYTHON, or python3 on
// the PATH and then Debian's, where apt-get install python3-onnx puts it (a version
// manager's python3 may come first on the PATH).
func pythons() []string {
	if p := os.Getenv("CONFIDE_PYTHON"); p != "" {
		return []string{p}
	}
	return []string{"python3", "/usr/bin/python3"}
}

// TestONNXChecker: every exported model type passes onnx.checker.check_model(full_check=True).
func TestONNXChecker(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, spec := range roundTripCases {
		m, err := model.New(spec, rand.New(rand.NewPCG(uint64(i), 7)))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Export(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := res.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("%02d-%s.onnx", i, caseName(spec)))
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	var out []byte
	var err error
	found := false
	for _, py := range pythons() {
		out, err = exec.Command(py, append([]string{"-c", checkerScript}, paths...)...).CombinedOutput()
		var exit *exec.ExitError
		if err == nil || errors.As(err, &exit) && !strings.Contains(string(out), "No module named 'onnx'") {
			found = true
			break
		}
	}
	if !found {
		t.Skip("no python3 with the onnx package (Debian: apt-get install python3-onnx; or set CONFIDE_PYTHON)")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "ok ") {
			t.Error(line)
		}
	}
	if err != nil {
		t.Fatalf("onnx checker: %v", err)
	}
	if n := strings.Count(string(out), "ok "); n != len(paths) {
		t.Fatalf("onnx checker passed %d of %d models", n, len(paths))
	}
}
