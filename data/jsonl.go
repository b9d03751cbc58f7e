package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"unicode/utf8"
)

// rawTexts holds the records of a jsonl file that fit the schema.
type rawTexts struct {
	text, label, group []string
}

// loadJSONL reads a jsonl text-classification dataset (see LoadSchema).
func loadJSONL(ctx context.Context, ld *Loaded, path, testPath string, o LoadOptions) error {
	s := ld.Schema
	bad := &badRows{skip: o.SkipBadRows}
	train, err := readTexts(ctx, s, path, bad)
	if err != nil {
		return err
	}
	if err := bad.err(); err != nil {
		return err
	}
	if len(train.text) == 0 {
		return fmt.Errorf("data: %s: no records: %w", path, ErrFormat)
	}
	l := s.Label
	if len(l.Classes) == 0 {
		l.Classes = sortedLabels(train.label)
		ld.Fitted = append(ld.Fitted, fmt.Sprintf("label.classes (%d, from the training file)", len(l.Classes)))
	}
	ids := indexOf(l.Classes)
	strata := make([]int32, len(train.label))
	for i, lab := range train.label {
		strata[i] = ids[lab]
	}
	trIdx, teIdx, err := splitRows(s, len(train.text), strata, testPath != "", o)
	if err != nil {
		return err
	}
	t := s.Text
	if t.MaxLen == 0 && !t.IsBag() {
		t.MaxLen = 256
	}
	if t.Tokenizer == "" {
		t.Tokenizer = TokenizerWords
	}
	if t.VocabPath != "" {
		if t.Vocab, err = readVocabFile(s.Resolve(t.VocabPath)); err != nil {
			return err
		}
		t.VocabPath = ""
	}
	if len(t.Vocab) == 0 {
		t.Vocab = buildVocab(t, train.text, trIdx)
		ld.Fitted = append(ld.Fitted, fmt.Sprintf("text.vocab (%d entries, from the training texts)", len(t.Vocab)))
	}
	enc, err := newTextExamples(s)
	if err != nil {
		return err
	}
	groups := sortedLabels(train.group)
	ld.Train = enc.encode(train, trIdx, groups)
	if testPath != "" {
		test, err := readTexts(ctx, s, testPath, bad)
		if err != nil {
			return err
		}
		if err := bad.err(); err != nil {
			return err
		}
		ld.Test = enc.encode(test, seq(len(test.text)), groups)
	} else if teIdx != nil {
		ld.Test = enc.encode(train, teIdx, groups)
	}
	bad.record(ld)
	return nil
}

// buildVocab builds a tokenizer vocabulary from the training texts idx: for words, those
// seen MinCount times (default 2) among the tokens a model sees (the first MaxLen of each
// cleaned text, all of them when MaxLen is 0), the most frequent MaxVocab (default 20,000) of them; for characters, all.
func buildVocab(t *TextField, texts []string, idx []int) []string {
	if t.Tokenizer == TokenizerChars {
		var b []byte
		for _, i := range idx {
			b = append(b, texts[i]...)
		}
		return NewCharTokenizer(string(b)).Encoding().Vocab
	}
	limit := t.MaxLen
	if limit == 0 {
		limit = -1 // a bag of words reads every word
	}
	counts := map[string]int{}
	for _, i := range idx {
		for _, w := range splitWords(emailBodyIf(t, texts[i]), limit) {
			counts[w]++
		}
	}
	minCount, maxVocab := t.MinCount, t.MaxVocab
	if minCount == 0 {
		minCount = 2
	}
	if maxVocab == 0 {
		maxVocab = 20000
	}
	tok, _ := wordTokenizerFromCounts(counts, WordVocabOptions{MaxSize: maxVocab + firstTokenID, MinCount: minCount})
	return tok.Vocab()
}

func emailBodyIf(t *TextField, text string) string {
	if t.StripEmailHeaders || t.StripHTML {
		return emailBody(text, !t.StripEmailHeaders, !t.StripHTML)
	}
	return text
}

// readTexts reads the records of path that fit s; the others go to bad.
func readTexts(ctx context.Context, s *Schema, path string, bad *badRows) (*rawTexts, error) {
	r, closeFile, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	file := filepath.Base(path)
	textField := s.Text.Column
	if textField == "" {
		textField = "text"
	}
	var classes map[string]int32
	if len(s.Label.Classes) > 0 {
		classes = indexOf(s.Label.Classes)
	}
	out := &rawTexts{}
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("data: %s: line %d: %w", path, line, err)
		}
		if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 {
			var obj map[string]any
			if jerr := json.Unmarshal(trimmed, &obj); jerr != nil {
				bad.add(&BadRowError{File: file, Line: line, Reason: "not a JSON object: " + jerr.Error()})
			} else if rec, rowErr := textRecord(obj, textField, s, classes); rowErr != nil {
				rowErr.File, rowErr.Line = file, line
				bad.add(rowErr)
			} else {
				out.text = append(out.text, rec[0])
				out.label = append(out.label, rec[1])
				if s.Group != "" {
					out.group = append(out.group, rec[2])
				}
			}
		}
		if err == io.EOF {
			return out, nil
		}
	}
}

// textRecord returns the text, label and group of a record, or what is wrong with it.
func textRecord(obj map[string]any, textField string, s *Schema, classes map[string]int32) ([3]string, *BadRowError) {
	var rec [3]string
	field := func(name string, k int) *BadRowError {
		v, ok := obj[name]
		switch v := v.(type) {
		case string:
			if !utf8.ValidString(v) {
				return &BadRowError{Column: strconv.Quote(name), Reason: "not valid UTF-8"}
			}
			rec[k] = v
		case float64:
			if k == 0 {
				return &BadRowError{Column: strconv.Quote(name), Reason: "the text must be a string"}
			}
			rec[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			if !ok {
				return &BadRowError{Column: strconv.Quote(name), Reason: "field missing"}
			}
			return &BadRowError{Column: strconv.Quote(name), Reason: fmt.Sprintf("a %T, want a string", v)}
		}
		return nil
	}
	if e := field(textField, 0); e != nil {
		return rec, e
	}
	if e := field(s.Label.Column, 1); e != nil {
		return rec, e
	}
	if classes != nil {
		if _, ok := classes[rec[1]]; !ok {
			return rec, &BadRowError{Column: strconv.Quote(s.Label.Column), Reason: fmt.Sprintf("label %q is not one of the classes %q", rec[1], s.Label.Classes)}
		}
	}
	if s.Group != "" {
		if e := field(s.Group, 2); e != nil {
			return rec, e
		}
	}
	return rec, nil
}

// textExamples turns a jsonl dataset's records into examples as its schema says: token
// sequences (tokens), or bags of words (bag, when the text's encoding is bag).
type textExamples struct {
	s      *Schema
	tokens *TextEncoder
	bag    *BagEncoder
}

// newTextExamples returns the encoder of the schema's text field, its vocabulary listed.
func newTextExamples(s *Schema) (*textExamples, error) {
	e := &textExamples{s: s}
	var err error
	if s.Text.IsBag() {
		e.bag, err = NewBagEncoder(s.Text)
		return e, err
	}
	if e.tokens, err = NewTextEncoder(s.Text.tokenEncoding()); err != nil {
		return nil, fmt.Errorf("data: text.vocab: %w", err)
	}
	return e, nil
}

// encode builds the dataset of the records idx: their features, labels, groups (numbered
// by groups, then in order of appearance) and the sender domains of e-mails.
func (e *textExamples) encode(r *rawTexts, idx []int, groups []string) *Dataset {
	s := e.s
	d := &Dataset{N: len(idx), Y: make([]int32, len(idx)), NumClasses: len(s.Label.Classes),
		ClassNames: cloneSlice(s.Label.Classes), Task: TaskClassify}
	if e.bag != nil {
		e.encodeBags(d, r, idx)
	} else {
		e.encodeTokens(d, r, idx)
	}
	ids := indexOf(s.Label.Classes)
	texts := make([]string, len(idx))
	for k, i := range idx {
		d.Y[k] = ids[r.label[i]]
		texts[k] = r.text[i]
	}
	if r.group != nil {
		d.Group, d.GroupNames = groupIDs(r.group, idx, groups)
	}
	d.SenderDomain, d.SenderDomainNames = senderDomains(texts)
	return d
}

// encodeTokens sets d's token sequences: each text's first MaxLen token ids, padded.
func (e *textExamples) encodeTokens(d *Dataset, r *rawTexts, idx []int) {
	T := e.s.Text.MaxLen
	te := e.s.Text.tokenEncoding()
	d.SeqLen, d.VocabSize, d.Text = T, e.tokens.VocabSize(), te.clone()
	d.Tokens, d.Lengths = make([]int32, len(idx)*T), make([]int32, len(idx))
	var buf []int32
	for k, i := range idx {
		buf = e.tokens.Encode(buf[:0], r.text[i])
		n := copy(d.Tokens[k*T:(k+1)*T], buf)
		if n == 0 {
			// A text without tokens is the single unknown token, so every example has a
			// position to pool.
			d.Tokens[k*T], n = UnknownID, 1
		}
		d.Lengths[k] = int32(n)
	}
}

// encodeBags sets d's dense features: each text's bag of words.
func (e *textExamples) encodeBags(d *Dataset, r *rawTexts, idx []int) {
	D := e.bag.Dim()
	d.Dim, d.X = D, make([]float64, len(idx)*D)
	var buf []int32
	for k, i := range idx {
		buf = e.bag.Encode(d.X[k*D:(k+1)*D], r.text[i], buf)
	}
}
