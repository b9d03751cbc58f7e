package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fileServer serves files[path] and counts requests.
func fileServer(t *testing.T, files map[string][]byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFetchDownloadsVerifiesAndCaches(t *testing.T) {
	content := bytes.Repeat([]byte("to be, or not to be\n"), 500)
	srv, hits := fileServer(t, map[string][]byte{"/plays.txt": content, "/bad.txt": []byte("tampered")})
	ds := RemoteDataset{Name: "plays", About: "test plays", Result: "plays.txt",
		Files: []RemoteFile{{Name: "plays.txt", URLs: []string{srv.URL + "/missing.txt", srv.URL + "/plays.txt"}, SHA256: sha(content), Size: int64(len(content))}}}
	cache := t.TempDir()
	var progressed bytes.Buffer
	o := FetchOptions{CacheDir: cache, Progress: func(name string, size int64) io.Writer {
		if name != "plays.txt" || size != int64(len(content)) {
			t.Errorf("progress for %s of %d bytes, want plays.txt of %d", name, size, len(content))
		}
		return &progressed
	}}
	p, err := fetchDataset(t.Context(), ds, o)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, content) || p != filepath.Join(cache, "plays", "plays.txt") {
		t.Fatalf("fetched %s with %d bytes", p, len(got))
	}
	if progressed.Len() != len(content) {
		t.Errorf("the progress writer saw %d bytes, want %d", progressed.Len(), len(content))
	}
	// The second location served it after the first's 404; a second fetch reads the cache.
	before := hits.Load()
	if _, err := fetchDataset(t.Context(), ds, o); err != nil || hits.Load() != before {
		t.Errorf("cached fetch: err %v, %d more requests", err, hits.Load()-before)
	}
	// A corrupted cached file is downloaded again.
	if err := os.WriteFile(p, []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fetchDataset(t.Context(), ds, o); err != nil || hits.Load() == before {
		t.Errorf("fetch over a corrupt cache: err %v, requests %d", err, hits.Load()-before)
	}
	// A download whose SHA-256 differs is refused and leaves nothing behind.
	bad := ds
	bad.Name, bad.Files = "bad", []RemoteFile{{Name: "plays.txt", URLs: []string{srv.URL + "/bad.txt"}, SHA256: sha(content)}}
	_, err = fetchDataset(t.Context(), bad, FetchOptions{CacheDir: cache})
	if !errors.Is(err, ErrNotFetched) || !strings.Contains(err.Error(), "refusing it") {
		t.Fatalf("tampered download: err %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "bad")); len(ents) != 0 {
		t.Errorf("the refused download left %d files", len(ents))
	}
}

func TestFetchOfflineSaysWhatToPutWhere(t *testing.T) {
	cache := t.TempDir()
	_, err := Fetch(t.Context(), "shakespeare", FetchOptions{CacheDir: cache, Offline: true})
	want := filepath.Join(cache, "shakespeare", "tinyshakespeare.txt")
	if !errors.Is(err, ErrNotFetched) || !strings.Contains(err.Error(), "save it as "+want) ||
		!strings.Contains(err.Error(), "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt") ||
		strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("offline: %v", err)
	}
	_, err = Fetch(t.Context(), "spam", FetchOptions{CacheDir: cache, Offline: true})
	if !errors.Is(err, ErrNotFetched) || !strings.Contains(err.Error(), "20050311_spam_2.tar.bz2") || !strings.Contains(err.Error(), "converts them into spamassassin.jsonl.gz") {
		t.Fatalf("offline spam: %v", err)
	}
	if _, err := Fetch(t.Context(), "imagenet", FetchOptions{CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "fashion-mnist, shakespeare, spam") {
		t.Errorf("unknown dataset: %v", err)
	}
}

// TestFetchShakespeareFromMirror downloads tiny Shakespeare from a local mirror (the shared
// copy, when this checkout has one) and checks it against the pinned SHA-256: the mirror
// holds the very file char-rnn publishes.
func TestFetchShakespeareFromMirror(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "tinyshakespeare.txt"))
	if err != nil {
		t.Skip("no ../shared/data/tinyshakespeare.txt to serve as a mirror")
	}
	srv, _ := fileServer(t, map[string][]byte{"/shakespeare/tinyshakespeare.txt": b})
	p, err := Fetch(t.Context(), "shakespeare", FetchOptions{CacheDir: t.TempDir(), Mirror: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadShakespeare(p, ShakespeareOptions{})
	if err != nil || c.Train.N == 0 {
		t.Fatalf("loading the fetched file: %v", err)
	}
}

func TestConvertSpamArchives(t *testing.T) {
	var out bytes.Buffer
	digest, counts, err := ConvertSpamArchives(t.Context(), filepath.Join("testdata", "spamassassin"), &out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"easy-ham-1": 2, "easy-ham-2": 1, "hard-ham-1": 1, "spam-1": 2, "spam-2": 1}
	for g, n := range want {
		if counts[g] != n {
			t.Errorf("mailbox %s: %d messages, want %d (cmds left out)", g, counts[g], n)
		}
	}
	mails, err := readMails(&out)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(mails))
	d := newSpamDigest()
	for i, m := range mails {
		ids[i] = m.ID
		d.add(m)
	}
	if got := strings.Join(ids, " "); got != "easy-ham-1/00001 easy-ham-1/00003 easy-ham-2/00001 hard-ham-1/00001 spam-1/00001 spam-1/00003 spam-2/00001" {
		t.Errorf("ids %s", got)
	}
	if d.sum() != digest {
		t.Error("the digest of the written lines differs from the conversion's")
	}
	// Raw bytes are kept (CR included); invalid UTF-8 becomes U+FFFD per maximal subpart.
	if txt := *mails[1].Text; !strings.Contains(txt, "Latin-1 byte \ufffd and UTF-8 é.\r\n") {
		t.Errorf("text %q", txt)
	}
	if txt := *mails[4].Text; !strings.Contains(txt, "prize \ufffd now") {
		t.Errorf("a truncated 4-byte sequence: %q", txt)
	}
	if err := checkSpamContent(digest, counts); err == nil || !strings.Contains(err.Error(), "mailbox easy-ham-1 has 2 messages") {
		t.Errorf("the fixture passed as the real corpus: %v", err)
	}
	// The converted file is what the spam task reads.
	path := filepath.Join(t.TempDir(), SpamJSONLName)
	var again bytes.Buffer
	if _, _, err := ConvertSpamArchives(t.Context(), filepath.Join("testdata", "spamassassin"), &again); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, again.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSpamAssassin(path, SpamOptions{Vocab: WordVocabOptions{MinCount: 1}, TestFraction: 0.3}, rand.New(rand.NewPCG(1, 2)))
	if err != nil || c.Train.N+c.Test.N != 7 || c.Train.NumGroups() != 5 {
		t.Fatalf("LoadSpamAssassin of the conversion: %v", err)
	}
}

// TestSpamContentDigestIsTheMirrors checks the pinned content digest against the shared
// copy of the converted corpus (when this checkout has one).
func TestSpamContentDigestIsTheMirrors(t *testing.T) {
	p := filepath.Join("..", "..", "shared", "data", "spamassassin.jsonl.gz")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no ../shared/data/spamassassin.jsonl.gz")
	}
	if err := verifySpamJSONL(p); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeUTF8Replace(t *testing.T) {
	// Reference: Python 3's bytes.decode("utf-8", "replace") on the same bytes.
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"\xe2\x82A", "\ufffdA"},
		{"\xff\xfe", "\ufffd\ufffd"},
		{"\xf0\x9f\x98x", "\ufffdx"},
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"\xc3", "\ufffd"},
		{"a\xe0\x80b", "a\ufffd\ufffdb"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xe1\x80\xe2\x82\xac", "\ufffd€"},
	} {
		if got := decodeUTF8Replace([]byte(c.in)); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestFashionMNISTDirPrefersCacheThenDebian checks where Fashion-MNIST comes from without
// --data-dir: the verified cache first, Debian's package second, a download last.
func TestFashionMNISTDirPrefersCacheThenDebian(t *testing.T) {
	cache := t.TempDir()
	dir, err := FashionMNISTDir(context.Background(), "", FetchOptions{CacheDir: cache, Offline: true})
	if _, statErr := os.Stat(FashionMNISTDefaultDir); statErr == nil {
		if err != nil || dir != FashionMNISTDefaultDir {
			t.Fatalf("with Debian's package installed: %q, %v", dir, err)
		}
		return
	}
	if !errors.Is(err, ErrNotFetched) || !strings.Contains(err.Error(), "fashion-mnist.s3-website") {
		t.Fatalf("offline without the package: %v", err)
	}
}
