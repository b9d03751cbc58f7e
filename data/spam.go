package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// SpamOptions configures the spam-filtering task built from e-mails in JSON lines.
type SpamOptions struct {
	// MaxLen is the number of tokens kept per e-mail (the first ones); 0 means 256.
	MaxLen int
	// Vocab bounds the word vocabulary built from the training e-mails; zero fields
	// take WordVocabOptions' defaults except MinCount, which defaults to 2 here.
	Vocab WordVocabOptions
	// TestFraction of each label goes to the test set; 0 means 0.2.
	TestFraction float64
	// KeepHeaders keeps the e-mail headers (normally everything up to the first blank
	// line is dropped: routing headers identify the mailbox, not spam).
	KeepHeaders bool
	// KeepHTML keeps HTML tags (normally they are removed and entities decoded).
	KeepHTML bool
}

// SpamCorpus is the spam-filtering task: Train and Test are token-sequence
// classification datasets (class 0 "ham", 1 "spam") with one Group per mailbox
// (GroupNames, the same in both), encoded by one Tokenizer built from the training set.
// TrainIDs and TestIDs give each example's "id".
type SpamCorpus struct {
	Train, Test       *Dataset
	Tokenizer         *WordTokenizer
	TrainIDs, TestIDs []string
}

// SpamClassNames are the classes of the spam task, in id order.
var SpamClassNames = []string{"ham", "spam"}

// LoadSpamAssassin reads e-mails from a JSON-lines file at path, gzipped or not (such as
// spamassassin.jsonl.gz); see ReadSpamAssassin.
func LoadSpamAssassin(path string, opts SpamOptions, rng *rand.Rand) (*SpamCorpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	name := filepath.Base(path)
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".jsonl")
	c, err := ReadSpamAssassin(f, name, opts, rng)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return c, nil
}

// ReadSpamAssassin reads e-mails, one JSON object a line with string fields "id",
// "group" (the mailbox), "label" ("spam" or "ham") and "text" (the raw message), from r,
// gzipped or not; other fields are ignored. It splits them into training and test sets stratified by label (rng
// picks the test e-mails), builds the word vocabulary from the training e-mails alone
// (from the words the model sees: the first MaxLen of each), and encodes each e-mail's body (headers and HTML tags stripped unless opts say
// otherwise) as its first MaxLen words, padded with PadID. An e-mail with no words is
// encoded as the single token UnknownID, so every example has length ≥ 1. Group ids
// number the mailboxes in sorted order; SenderDomain ids the sender domains of each set.
func ReadSpamAssassin(r io.Reader, name string, opts SpamOptions, rng *rand.Rand) (*SpamCorpus, error) {
	if err := checkRNG("spam split", rng); err != nil {
		return nil, err
	}
	maxLen, testFrac := opts.MaxLen, opts.TestFraction
	if maxLen == 0 {
		maxLen = 256
	}
	if testFrac == 0 {
		testFrac = 0.2
	}
	if maxLen < 1 || testFrac < 0 || testFrac >= 1 {
		return nil, fmt.Errorf("spam: MaxLen %d must be ≥ 1 and TestFraction %v in [0, 1)", opts.MaxLen, opts.TestFraction)
	}
	vopts := opts.Vocab
	if vopts.MinCount == 0 {
		vopts.MinCount = 2
	}
	mails, err := readMails(r)
	if err != nil {
		return nil, err
	}
	if len(mails) == 0 {
		return nil, fmt.Errorf("spam: no e-mails: %w", ErrFormat)
	}
	var groups []string
	labels := make([]int32, len(mails))
	words := make([][]string, len(mails)) // the first maxLen words of each body
	for i, m := range mails {
		groups = append(groups, m.Group)
		if m.Label == "spam" {
			labels[i] = 1
		}
		words[i] = splitWords(emailBody(*m.Text, opts.KeepHeaders, opts.KeepHTML), maxLen)
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)

	trainIdx, testIdx, err := StratifiedSplit(labels, testFrac, rng)
	if err != nil {
		return nil, fmt.Errorf("spam: %w", err)
	}
	// The vocabulary counts the words the model will see: the first maxLen of each
	// training e-mail.
	counts := map[string]int{}
	for _, i := range trainIdx {
		for _, w := range words[i] {
			counts[w]++
		}
	}
	tok, err := wordTokenizerFromCounts(counts, vopts)
	if err != nil {
		return nil, fmt.Errorf("spam: %w", err)
	}
	enc := tok.Encoding(maxLen)
	enc.StripEmailHeaders, enc.StripHTML = !opts.KeepHeaders, !opts.KeepHTML
	build := func(split string, idx []int) (*Dataset, []string) {
		d := &Dataset{
			Name: name + "-" + split, N: len(idx), SeqLen: maxLen, VocabSize: tok.VocabSize(),
			Tokens: make([]int32, len(idx)*maxLen), Lengths: make([]int32, len(idx)),
			Y: make([]int32, len(idx)), NumClasses: 2, ClassNames: cloneSlice(SpamClassNames),
			Task: TaskClassify, Group: make([]int32, len(idx)), GroupNames: cloneSlice(groups),
			Text: enc.clone(),
		}
		ids, texts := make([]string, len(idx)), make([]string, len(idx))
		for k, i := range idx {
			texts[k] = *mails[i].Text
			row := d.Tokens[k*maxLen : (k+1)*maxLen]
			for j, w := range words[i] {
				row[j] = tok.ID(w)
			}
			n := len(words[i])
			if n == 0 {
				row[0], n = UnknownID, 1
			}
			d.Lengths[k] = int32(n)
			d.Y[k] = labels[i]
			g, _ := slices.BinarySearch(groups, mails[i].Group)
			d.Group[k] = int32(g)
			ids[k] = mails[i].ID
		}
		d.SenderDomain, d.SenderDomainNames = senderDomains(texts)
		return d, ids
	}
	c := &SpamCorpus{Tokenizer: tok}
	c.Train, c.TrainIDs = build("train", trainIdx)
	c.Test, c.TestIDs = build("test", testIdx)
	return c, nil
}

type mail struct {
	ID    string  `json:"id"`
	Group string  `json:"group"`
	Label string  `json:"label"`
	Text  *string `json:"text"` // a pointer, to tell a missing field from an empty one
}

// readMails parses the JSON lines of r (gzip detected by its magic bytes), checking
// every field; errors name the line.
func readMails(r io.Reader) ([]mail, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("spam: gzip header: %v: %w", err, ErrFormat)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<16)
	}
	var mails []mail
	seen := map[string]int{}
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("spam: line %d: %v: %w", lineNo, err, ErrFormat)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			var m mail
			if derr := json.Unmarshal(trimmed, &m); derr != nil {
				var ute *json.UnmarshalTypeError
				if errors.As(derr, &ute) {
					return nil, fmt.Errorf("spam: line %d: field %q must be a string: %w", lineNo, ute.Field, ErrFormat)
				}
				return nil, fmt.Errorf("spam: line %d: not a JSON object with id, group, label and text: %v: %w", lineNo, derr, ErrFormat)
			}
			switch {
			case m.ID == "":
				return nil, fmt.Errorf("spam: line %d: field \"id\" missing or empty: %w", lineNo, ErrFormat)
			case m.Group == "":
				return nil, fmt.Errorf("spam: line %d (id %s): field \"group\" missing or empty; it names the mailbox: %w", lineNo, m.ID, ErrFormat)
			case m.Text == nil:
				return nil, fmt.Errorf("spam: line %d (id %s): field \"text\" missing: %w", lineNo, m.ID, ErrFormat)
			case m.Label != "spam" && m.Label != "ham":
				return nil, fmt.Errorf("spam: line %d (id %s): field \"label\" = %q, want \"spam\" or \"ham\": %w", lineNo, m.ID, m.Label, ErrFormat)
			}
			if prev, dup := seen[m.ID]; dup {
				return nil, fmt.Errorf("spam: line %d: id %q already used on line %d: %w", lineNo, m.ID, prev, ErrFormat)
			}
			seen[m.ID] = lineNo
			mails = append(mails, m)
		}
		if err == io.EOF {
			return mails, nil
		}
	}
}

var (
	htmlDropBlocks = regexp.MustCompile(`(?is)<(script|style)\b.*?</(script|style)\s*>`)
	htmlTags       = regexp.MustCompile(`(?s)<[^>]*>`)
)

// emailBody strips an e-mail's headers (everything before the first blank line; a
// message without a blank line is all body) and, crudely, its HTML: script and style
// blocks and tags are removed and entities decoded.
func emailBody(text string, keepHeaders, keepHTML bool) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if !keepHeaders {
		if i := strings.Index(text, "\n\n"); i >= 0 {
			text = text[i+2:]
		}
	}
	if !keepHTML {
		text = htmlDropBlocks.ReplaceAllString(text, " ")
		text = htmlTags.ReplaceAllString(text, " ")
		text = html.UnescapeString(text)
	}
	return text
}
