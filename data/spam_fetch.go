package data

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// SpamJSONLName is the file the SpamAssassin archives are converted into.
const SpamJSONLName = "spamassassin.jsonl.gz"

// spamArchive is one archive of the SpamAssassin public corpus: its file, the directory
// its messages sit in, the mailbox (group) it becomes, their label and how many messages
// it holds.
type spamArchive struct {
	file, dir, group, label string
	messages                int
}

// spamArchives are the five archives Confide's spam task is made of, in the order their
// messages are written (and ids numbered).
var spamArchives = []spamArchive{
	{"20030228_easy_ham.tar.bz2", "easy_ham", "easy-ham-1", "ham", 2500},
	{"20030228_easy_ham_2.tar.bz2", "easy_ham_2", "easy-ham-2", "ham", 1400},
	{"20030228_hard_ham.tar.bz2", "hard_ham", "hard-ham-1", "ham", 250},
	{"20030228_spam.tar.bz2", "spam", "spam-1", "spam", 500},
	{"20050311_spam_2.tar.bz2", "spam_2", "spam-2", "spam", 1396},
}

// spamContentSHA256 pins the converted corpus: SHA-256 over its records in order, each
// id, group, label and text followed by a NUL byte (spamContentDigest). The Apache
// SpamAssassin project publishes no checksums of its archives, so the conversion's output
// is what is verified; the value is that of spamassassin.jsonl.gz, the corpus Confide's
// spam results were measured on (6,046 messages), which was made from these archives.
const spamContentSHA256 = "860ba46a6b9f50057f88fa5c96017aec436eb4b285944eb50fc249479c075c7f"

func spamArchiveFiles() []RemoteFile {
	files := make([]RemoteFile, len(spamArchives))
	for i, a := range spamArchives {
		files[i] = RemoteFile{Name: a.file, URLs: []string{"https://spamassassin.apache.org/old/publiccorpus/" + a.file}}
	}
	return files
}

// convertSpamArchives turns the archives in dir into SpamJSONLName there (see
// ConvertSpamArchives) and verifies the result.
func convertSpamArchives(ctx context.Context, dir string) error {
	dst := filepath.Join(dir, SpamJSONLName)
	tmp, err := os.CreateTemp(dir, SpamJSONLName+".part*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	digest, counts, err := ConvertSpamArchives(ctx, dir, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := checkSpamContent(digest, counts); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// checkSpamContent compares a conversion's digest and per-mailbox counts with the pinned
// corpus.
func checkSpamContent(digest string, counts map[string]int) error {
	for _, a := range spamArchives {
		if counts[a.group] != a.messages {
			return fmt.Errorf("mailbox %s has %d messages, the SpamAssassin archive %s holds %d: the download is not that archive", a.group, counts[a.group], a.file, a.messages)
		}
	}
	if digest != spamContentSHA256 {
		return fmt.Errorf("the converted e-mails have content SHA-256 %s, want %s: the archives differ from the published ones", digest, spamContentSHA256)
	}
	return nil
}

// verifySpamJSONL checks a converted corpus against the pinned content.
func verifySpamJSONL(path string) error {
	r, closeFile, err := openMaybeGzip(path)
	if err != nil {
		return err
	}
	defer closeFile()
	mails, err := readMails(r)
	if err != nil {
		return err
	}
	d := newSpamDigest()
	counts := map[string]int{}
	for _, m := range mails {
		d.add(m)
		counts[m.Group]++
	}
	return checkSpamContent(d.sum(), counts)
}

// ConvertSpamArchives reads the SpamAssassin public corpus archives from dir (the five
// files of spamArchives) and writes the e-mails to w as gzipped JSON lines in the form
// LoadSpamAssassin reads: one object a message with "id" (mailbox/number, e.g.
// "spam-2/00123", the number from the archive's file name), "group" (the mailbox:
// easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2), "label" (ham or spam) and "text"
// (the raw message; bytes that are not UTF-8 become U+FFFD, one for each maximal invalid
// subsequence, as Python's errors="replace" decodes). Messages are in archive order and
// by number within an archive; each archive's "cmds" file is left out. It returns the
// content digest (see spamContentSHA256) and the messages of every mailbox.
func ConvertSpamArchives(ctx context.Context, dir string, w io.Writer) (digest string, counts map[string]int, err error) {
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriter(zw)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	d := newSpamDigest()
	counts = map[string]int{}
	for _, a := range spamArchives {
		msgs, err := readSpamArchive(ctx, filepath.Join(dir, a.file), a)
		if err != nil {
			return "", nil, err
		}
		for _, m := range msgs {
			if err := enc.Encode(m); err != nil {
				return "", nil, err
			}
			d.add(m)
			counts[a.group]++
		}
	}
	if err := bw.Flush(); err != nil {
		return "", nil, err
	}
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return d.sum(), counts, nil
}

// readSpamArchive returns the messages of one archive, sorted by number.
func readSpamArchive(ctx context.Context, file string, a spamArchive) ([]mail, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(bzip2.NewReader(bufio.NewReaderSize(f, 1<<16)))
	var msgs []mail
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", filepath.Base(file), err, ErrFormat)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dirName, base := path.Split(strings.TrimPrefix(h.Name, "./"))
		if path.Clean(dirName) != a.dir || base == "cmds" {
			continue
		}
		num, _, ok := strings.Cut(base, ".")
		if !ok || len(num) != 5 {
			return nil, fmt.Errorf("%s: %s is not a message file (NNNNN.hash): %w", filepath.Base(file), h.Name, ErrFormat)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", filepath.Base(file), h.Name, err)
		}
		text := decodeUTF8Replace(b)
		msgs = append(msgs, mail{ID: a.group + "/" + num, Group: a.group, Label: a.label, Text: &text})
	}
	slices.SortFunc(msgs, func(x, y mail) int { return strings.Compare(x.ID, y.ID) })
	return msgs, nil
}

// spamDigest hashes converted messages as spamContentSHA256 says.
type spamDigest struct{ h hashWriter }

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newSpamDigest() *spamDigest { return &spamDigest{h: sha256.New()} }

func (d *spamDigest) add(m mail) {
	for _, s := range []string{m.ID, m.Group, m.Label, *m.Text} {
		io.WriteString(d.h, s)
		d.h.Write([]byte{0})
	}
}

func (d *spamDigest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// decodeUTF8Replace decodes b as UTF-8, replacing each maximal subpart of an ill-formed
// sequence with U+FFFD (Unicode 15, Sec. 3.9, "U+FFFD Substitution of Maximal Subparts",
// which Python's bytes.decode("utf-8", "replace") follows).
func decodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out bytes.Buffer
	out.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out.Write(b[i : i+n])
			i += n
			continue
		}
		out.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return out.String()
}

// maximalSubpart returns the length of the longest prefix of b (which does not start a
// well-formed sequence) that is a prefix of some well-formed sequence, at least 1.
func maximalSubpart(b []byte) int {
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // the second byte's range (Table 3-7)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead == 0xE0:
		need, lo = 2, 0xA0
	case lead >= 0xE1 && lead <= 0xEC, lead == 0xEE, lead == 0xEF:
		need = 2
	case lead == 0xED:
		need, hi = 2, 0x9F
	case lead == 0xF0:
		need, lo = 3, 0x90
	case lead >= 0xF1 && lead <= 0xF3:
		need = 3
	case lead == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 1; k <= need && k < len(b); k++ {
		c := b[k]
		if k == 1 && (c < lo || c > hi) || k > 1 && (c < 0x80 || c > 0xBF) {
			break
		}
		n++
	}
	return n
}
