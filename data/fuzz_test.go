package data

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The loaders take files from users: whatever the bytes, they return a valid dataset or
// an error, never a panic.

func FuzzLoadCSV(f *testing.F) {
	f.Add([]byte("y,a,b\n1,0.5,2\n0,1e3,-4\n"), false, -1)
	f.Add([]byte("1;2;a\n3;4;b\n"), true, 2)
	f.Add([]byte("y,a\n\"1\",\"x\n"), false, 0)
	f.Fuzz(func(t *testing.T, in []byte, noHeader bool, labelIndex int) {
		d, err := LoadCSV(bytes.NewReader(in), CSVOptions{NoHeader: noHeader, LabelIndex: labelIndex})
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted an invalid dataset: %v", err)
		}
	})
}

func FuzzReadShakespeare(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "plays.txt")); err == nil {
		f.Add(b, 10, 3)
	}
	f.Add([]byte("A:\nab\n\nB:\n\n"), 1, 1)
	f.Fuzz(func(t *testing.T, in []byte, seqLen, stride int) {
		if seqLen > 200 || stride > 200 {
			return // sizes, not parsing, beyond this
		}
		c, err := ReadShakespeare(bytes.NewReader(in), "fuzz", ShakespeareOptions{SeqLen: seqLen, Stride: stride})
		if err != nil {
			return
		}
		for _, d := range []*Dataset{c.Train, c.Test} {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid dataset: %v", err)
			}
		}
	})
}

func FuzzReadSpamAssassin(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "mails.jsonl")); err == nil {
		f.Add(b, 8)
		f.Add(gzipBytes(b), 3)
	}
	f.Add([]byte(`{"id":"a","group":"g","label":"spam","text":"<a href=x>hi</a>"}`), 1)
	f.Fuzz(func(t *testing.T, in []byte, maxLen int) {
		if maxLen > 512 {
			return
		}
		c, err := ReadSpamAssassin(bytes.NewReader(in), "fuzz", SpamOptions{MaxLen: maxLen, Vocab: WordVocabOptions{MinCount: 1}}, rand.New(rand.NewPCG(1, 0)))
		if err != nil {
			return
		}
		for _, d := range []*Dataset{c.Train, c.Test} {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid dataset: %v", err)
			}
		}
	})
}
