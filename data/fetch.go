package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RemoteFile is one file of a public dataset: its canonical download locations and, when
// a checksum is published or the file is known, its SHA-256.
type RemoteFile struct {
	Name string
	URLs []string
	// SHA256 pins the file's content; empty when none is published (then the dataset's
	// Convert verifies what it makes of the file).
	SHA256 string
	// Size, when known, sizes the progress bar before the server says.
	Size int64
}

// RemoteDataset is a dataset Fetch can download into the cache directory.
type RemoteDataset struct {
	Name  string
	About string
	// Files are downloaded into Dir (a directory under the cache) and checked.
	Files []RemoteFile
	// Convert, when set, turns the downloaded files into Result (the form Confide reads),
	// verifying it; without it Result is one of Files.
	Convert func(ctx context.Context, dir string) error
	// Result is the file (or, with several files, the directory "") a loader reads.
	Result string
	// ResultSHA256, when set, pins Result's content so a cached result is trusted without
	// converting again.
	ResultSHA256 string
}

// The datasets Fetch knows, by the names --dataset takes.
var remoteDatasets = map[string]RemoteDataset{
	"shakespeare": {
		Name:  "shakespeare",
		About: "tiny Shakespeare (Karpathy's char-rnn), 1.1 MB of plays",
		Files: []RemoteFile{{
			Name: "tinyshakespeare.txt", Size: 1115394,
			URLs: []string{"https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"},
			// The file as char-rnn publishes it.
			SHA256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
		}},
		Result: "tinyshakespeare.txt",
	},
	"fashion-mnist": {
		Name:  "fashion-mnist",
		About: "Fashion-MNIST (Xiao et al. 2017), 60,000 + 10,000 28×28 images, 30 MB",
		Files: fashionMNISTFiles(),
	},
	"spam": {
		Name: "spam",
		About: "the SpamAssassin public corpus (easy_ham, easy_ham_2, hard_ham, spam, spam_2), " +
			"6,046 e-mails in 5 mailboxes, converted into spamassassin.jsonl.gz",
		Files:        spamArchiveFiles(),
		Convert:      convertSpamArchives,
		Result:       SpamJSONLName,
		ResultSHA256: "", // the content is verified record by record (spamContentSHA256)
	},
}

// fashionMNISTFiles are Fashion-MNIST's four files from the dataset's canonical mirror. The
// SHA-256 values are the published files' (as pinned by independent loaders, e.g.
// Connor Olding's mnists and Britefury's batchup); Debian's dataset-fashion-mnist
// compresses the same data differently.
func fashionMNISTFiles() []RemoteFile {
	const base = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
	sums := [4]string{
		"08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
		"b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
		"78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
		"42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
	}
	sizes := [4]int64{26421880, 29515, 4422102, 5148}
	files := make([]RemoteFile, 4)
	for i, n := range idxImageSetFiles {
		files[i] = RemoteFile{Name: n + ".gz", URLs: []string{base + n + ".gz"}, SHA256: sums[i], Size: sizes[i]}
	}
	return files
}

// FetchableDatasets lists the names Fetch knows, sorted.
func FetchableDatasets() []string {
	names := make([]string, 0, len(remoteDatasets))
	for n := range remoteDatasets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FetchOptions configure Fetch.
type FetchOptions struct {
	// CacheDir is the cache's root; empty: os.UserCacheDir()/confide. A dataset goes to
	// CacheDir/NAME.
	CacheDir string
	// Mirror, when set, is a base URL that replaces the canonical locations: file F of
	// dataset D is downloaded from Mirror/D/F (a local mirror; tests).
	Mirror string
	// Client makes the requests; nil: http.DefaultClient.
	Client *http.Client
	// Progress, when set, is called as a download starts with the file's name and size (−1
	// if unknown) and returns a writer the downloaded bytes are also written to (a
	// progress bar), or nil.
	Progress func(name string, size int64) io.Writer
	// Offline checks the cache only and never downloads.
	Offline bool
}

// ErrNotFetched wraps the error of a dataset that is neither cached nor downloadable
// (offline, or every location failed); its message says which file to put where.
var ErrNotFetched = errors.New("dataset not fetched")

// Fetch returns the path of a public dataset in the cache: downloaded (with a progress
// bar), checked against its SHA-256 and converted as needed on first use, and checked
// again on later ones. Offline, or when every download location fails, the error
// (wrapping ErrNotFetched) names the files and where to put them.
func Fetch(ctx context.Context, name string, o FetchOptions) (string, error) {
	ds, ok := remoteDatasets[name]
	if !ok {
		return "", fmt.Errorf("data: no public dataset %q to fetch (use %s)", name, strings.Join(FetchableDatasets(), ", "))
	}
	return fetchDataset(ctx, ds, o)
}

func fetchDataset(ctx context.Context, ds RemoteDataset, o FetchOptions) (string, error) {
	root := o.CacheDir
	if root == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("data: %s: no cache directory (%v): pass the data with --data-path or --data-dir", ds.Name, err)
		}
		root = filepath.Join(base, "confide")
	}
	dir := filepath.Join(root, ds.Name)
	result := filepath.Join(dir, ds.Result)
	if ds.cached(dir) {
		return result, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data: %s: %w", ds.Name, err)
	}
	for _, f := range ds.Files {
		dst := filepath.Join(dir, f.Name)
		if f.SHA256 != "" && checkSHA256(dst, f.SHA256) == nil {
			continue
		}
		if f.SHA256 == "" && ds.Convert != nil {
			if _, err := os.Stat(dst); err == nil {
				continue // verified through the conversion's result
			}
		}
		if o.Offline {
			return "", ds.notFetched(dir, errors.New("offline"))
		}
		if err := download(ctx, f, ds.Name, dst, o); err != nil {
			return "", ds.notFetched(dir, err)
		}
	}
	if ds.Convert != nil {
		if err := ds.Convert(ctx, dir); err != nil {
			return "", fmt.Errorf("data: %s: %w", ds.Name, err)
		}
	}
	return result, nil
}

// cached reports whether dir holds the dataset, verified.
func (ds RemoteDataset) cached(dir string) bool {
	if ds.Convert != nil {
		return ds.verifyResult(filepath.Join(dir, ds.Result)) == nil
	}
	for _, f := range ds.Files {
		if checkSHA256(filepath.Join(dir, f.Name), f.SHA256) != nil {
			return false
		}
	}
	return true
}

func (ds RemoteDataset) verifyResult(path string) error {
	if ds.ResultSHA256 != "" {
		return checkSHA256(path, ds.ResultSHA256)
	}
	if ds.Name == "spam" {
		return verifySpamJSONL(path)
	}
	_, err := os.Stat(path)
	return err
}

// notFetched is the one clear message of a dataset that could not be downloaded: which
// files to put where (or the data-path flags that replace them).
func (ds RemoteDataset) notFetched(dir string, cause error) error {
	urls := make([]string, len(ds.Files))
	for i, f := range ds.Files {
		urls[i] = f.URLs[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dataset %s (%s) is not in the cache and could not be downloaded (%v): ", ds.Name, ds.About, cause)
	switch {
	case ds.Convert == nil && len(ds.Files) == 1:
		fmt.Fprintf(&b, "download %s and save it as %s, or pass the file with --data-path", urls[0], filepath.Join(dir, ds.Files[0].Name))
	case ds.Convert == nil:
		fmt.Fprintf(&b, "download %s into %s, or pass a directory holding them with --data-dir", strings.Join(urls, ", "), dir)
	default:
		fmt.Fprintf(&b, "download %s into %s (Confide converts them into %s on the next run), or pass a converted file with --data-path", strings.Join(urls, ", "), dir, ds.Result)
	}
	return fmt.Errorf("data: %s: %w", b.String(), ErrNotFetched)
}

// download fetches f from its locations (or the mirror) into dst through a temporary file,
// renamed into place only once complete and, when f has a checksum, matching it.
func download(ctx context.Context, f RemoteFile, dataset, dst string, o FetchOptions) error {
	urls := f.URLs
	if o.Mirror != "" {
		urls = []string{strings.TrimSuffix(o.Mirror, "/") + "/" + dataset + "/" + f.Name}
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	var errs []error
	for _, u := range urls {
		err := downloadFrom(ctx, client, u, f, dst, o.Progress)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func downloadFrom(ctx context.Context, client *http.Client, url string, f RemoteFile, dst string, progress func(string, int64) io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".part*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	if progress != nil {
		size := resp.ContentLength
		if size < 0 && f.Size > 0 {
			size = f.Size
		}
		if pw := progress(f.Name, size); pw != nil {
			w = io.MultiWriter(w, pw)
		}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); f.SHA256 != "" && got != f.SHA256 {
		return fmt.Errorf("%s from %s has SHA-256 %s, want %s: refusing it", f.Name, url, got, f.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
