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
	if t.MaxLen == 0 {
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
	enc, err := NewTextEncoder(TextEncoding{Tokenizer: t.Tokenizer, Vocab: t.Vocab, MaxLen: t.MaxLen,
		StripEmailHeaders: t.StripEmailHeaders, StripHTML: t.StripHTML})
	if err != nil {
		return fmt.Errorf("data: text.vocab: %w", err)
	}
	groups := sortedLabels(train.group)
	ld.Train = encodeTexts(s, enc, train, trIdx, groups)
	if testPath != "" {
		test, err := readTexts(ctx, s, testPath, bad)
		if err != nil {
			return err
		}
		if err := bad.err(); err != nil {
			return err
		}
		teIdx = make([]int, len(test.text))
		for i := range teIdx {
			teIdx[i] = i
		}
		ld.Test = encodeTexts(s, enc, test, teIdx, groups)
	} else if teIdx != nil {
		ld.Test = encodeTexts(s, enc, train, teIdx, groups)
	}
	bad.record(ld)
	return nil
}

// buildVocab builds a tokenizer vocabulary from the training texts idx: for words, those
// seen MinCount times (default 2) among the tokens a model sees (the first MaxLen of each
// cleaned text), the most frequent MaxVocab (default 20,000) of them; for characters, all.
func buildVocab(t *TextField, texts []string, idx []int) []string {
	if t.Tokenizer == TokenizerChars {
		var b []byte
		for _, i := range idx {
			b = append(b, texts[i]...)
		}
		return NewCharTokenizer(string(b)).Encoding().Vocab
	}
	counts := map[string]int{}
	for _, i := range idx {
		for _, w := range splitWords(emailBodyIf(t, texts[i]), t.MaxLen) {
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

// encodeTexts builds the token-sequence dataset of the records idx.
func encodeTexts(s *Schema, enc *TextEncoder, r *rawTexts, idx []int, groups []string) *Dataset {
	T := s.Text.MaxLen
	e := &TextEncoding{Tokenizer: s.Text.Tokenizer, Vocab: s.Text.Vocab, MaxLen: T,
		StripEmailHeaders: s.Text.StripEmailHeaders, StripHTML: s.Text.StripHTML}
	d := &Dataset{
		N: len(idx), SeqLen: T, VocabSize: enc.VocabSize(), Tokens: make([]int32, len(idx)*T),
		Lengths: make([]int32, len(idx)), Y: make([]int32, len(idx)), NumClasses: len(s.Label.Classes),
		ClassNames: cloneSlice(s.Label.Classes), Task: TaskClassify, Text: e.clone(),
	}
	ids := indexOf(s.Label.Classes)
	var buf []int32
	for k, i := range idx {
		buf = enc.Encode(buf[:0], r.text[i])
		n := copy(d.Tokens[k*T:(k+1)*T], buf)
		if n == 0 {
			// A text without tokens is the single unknown token, so every example has a
			// position to pool.
			d.Tokens[k*T], n = UnknownID, 1
		}
		d.Lengths[k] = int32(n)
		d.Y[k] = ids[r.label[i]]
	}
	if r.group != nil {
		d.Group, d.GroupNames = groupIDs(r.group, idx, groups)
	}
	return d
}
