package data

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// ShakespeareOptions configures the LEAF-style next-character task built from a play
// text of "NAME:" speech blocks.
type ShakespeareOptions struct {
	// SeqLen is the length of an example; 0 means 80, as in LEAF (Caldas et al. 2018).
	SeqLen int
	// Stride is the step between the starts of consecutive examples of a role; 0 means
	// SeqLen, so every character of a role is a target exactly once. LEAF uses 1 (every
	// window, predicting only its last character), which multiplies the examples by
	// SeqLen for the same text.
	Stride int
	// TestFraction of each role's speech lines, its last ones, is held out as test
	// text; 0 means 0.1. A negative value holds out nothing.
	TestFraction float64
	// Vocab fixes the character vocabulary (see NewCharTokenizerFromVocab); when empty
	// it is built from the training text.
	Vocab []rune
}

// ShakespeareCorpus is the next-character task: Train and Test have Task
// TaskNextToken and one Group per speaking role (GroupNames, the same in both), encoded
// by one Tokenizer built from the training text.
type ShakespeareCorpus struct {
	Train, Test *Dataset
	Tokenizer   *CharTokenizer
}

// LoadShakespeare reads a play text at path (such as tinyshakespeare.txt); see
// ReadShakespeare.
func LoadShakespeare(path string, opts ShakespeareOptions) (*ShakespeareCorpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	c, err := ReadShakespeare(f, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), opts)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return c, nil
}

// ReadShakespeare builds the next-character task from a play text in the format of
// tiny-Shakespeare: speeches separated by blank lines, each starting with a line holding
// the speaker's name and a colon ("First Citizen:"), followed by the lines spoken.
//
// It follows LEAF's Shakespeare preprocessing (Caldas et al. 2018) where the format
// allows: one client per speaking role, names upper-cased so that casings of one role
// merge; a role's lines are joined with single spaces (LEAF turns newlines into spaces
// and collapses runs of spaces) and cut into examples of SeqLen characters whose target at
// each position is the next character (LEAF's label is the target at the last position).
// LEAF keys roles by play and role; this format has no play titles, so a role is its
// name alone and, for example, every play's "First Citizen" is one client.
//
// The last TestFraction of each role's lines (rounded) are its test text, so test
// windows never overlap training ones; roles with fewer than 5 lines have none. A role
// whose training text is under two characters is dropped, test lines and all. Group ids
// number the kept roles in order of first appearance.
func ReadShakespeare(r io.Reader, name string, opts ShakespeareOptions) (*ShakespeareCorpus, error) {
	seqLen, stride, testFrac := opts.SeqLen, opts.Stride, opts.TestFraction
	if seqLen == 0 {
		seqLen = 80
	}
	if stride == 0 {
		stride = seqLen
	}
	if testFrac == 0 {
		testFrac = 0.1
	}
	if seqLen < 1 || stride < 1 || testFrac >= 1 {
		return nil, fmt.Errorf("shakespeare: SeqLen %d and Stride %d must be ≥ 1 and TestFraction %v below 1", opts.SeqLen, opts.Stride, opts.TestFraction)
	}
	testFrac = max(testFrac, 0)

	roles, lines, err := parseSpeeches(r)
	if err != nil {
		return nil, err
	}
	type roleText struct{ name, train, test string }
	var kept []roleText
	var trainAll strings.Builder
	for i, role := range roles {
		l := lines[i]
		nTest := int(math.Round(testFrac * float64(len(l))))
		rt := roleText{name: role, train: joinSpeech(l[:len(l)-nTest]), test: joinSpeech(l[len(l)-nTest:])}
		if len([]rune(rt.train)) < 2 {
			continue
		}
		kept = append(kept, rt)
		trainAll.WriteString(rt.train)
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("shakespeare: no role has two characters of training text: %w", ErrFormat)
	}
	tok := NewCharTokenizer(trainAll.String())
	if len(opts.Vocab) > 0 {
		if tok, err = NewCharTokenizerFromVocab(opts.Vocab); err != nil {
			return nil, fmt.Errorf("shakespeare: %w", err)
		}
	}
	groupNames := make([]string, len(kept))
	for i, rt := range kept {
		groupNames[i] = rt.name
	}
	newSet := func(split string) *Dataset {
		return &Dataset{
			Name: name + "-" + split, SeqLen: seqLen, VocabSize: tok.VocabSize(),
			Tokens: []int32{}, Lengths: []int32{}, Targets: []int32{},
			Task: TaskNextToken, Group: []int32{}, GroupNames: groupNames, Text: tok.Encoding(),
		}
	}
	train, test := newSet("train"), newSet("test")
	var ids []int32
	for g, rt := range kept {
		ids = tok.Encode(ids[:0], rt.train)
		appendWindows(train, ids, int32(g), stride)
		ids = tok.Encode(ids[:0], rt.test)
		appendWindows(test, ids, int32(g), stride)
	}
	test.GroupNames = cloneSlice(groupNames)
	return &ShakespeareCorpus{Train: train, Test: test, Tokenizer: tok}, nil
}

// appendWindows adds the next-token examples of one role's text ids to d: windows
// starting every stride ids, inputs ids[s:s+L] and targets ids[s+1:s+L+1], the last one
// padded; it stops at the first window that reaches the end of the text.
func appendWindows(d *Dataset, ids []int32, group int32, stride int) {
	L := d.SeqLen
	for s := 0; s+1 < len(ids); s += stride {
		n := min(L, len(ids)-1-s)
		for j := range L {
			if j < n {
				d.Tokens = append(d.Tokens, ids[s+j])
				d.Targets = append(d.Targets, ids[s+j+1])
			} else {
				d.Tokens = append(d.Tokens, PadID)
				d.Targets = append(d.Targets, IgnoreTarget)
			}
		}
		d.Lengths = append(d.Lengths, int32(n))
		d.Group = append(d.Group, group)
		d.N++
		if s+n+1 == len(ids) {
			break
		}
	}
}

// parseSpeeches returns the roles in order of first appearance and the lines each speaks.
func parseSpeeches(r io.Reader) (roles []string, lines [][]string, err error) {
	index := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	lineNo := 0
	current := -1 // role of the block being read; -1 between blocks
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if strings.TrimSpace(line) == "" {
			current = -1
			continue
		}
		if current >= 0 {
			lines[current] = append(lines[current], strings.TrimSpace(line))
			continue
		}
		speaker, ok := strings.CutSuffix(line, ":")
		speaker = strings.Join(strings.Fields(strings.ToUpper(speaker)), " ")
		if !ok || speaker == "" {
			return nil, nil, fmt.Errorf("shakespeare: line %d: %q starts a speech but is not a \"NAME:\" line; every speech must begin with its speaker's name and a colon, after a blank line: %w",
				lineNo, truncateForError(line), ErrFormat)
		}
		i, seen := index[speaker]
		if !seen {
			i = len(roles)
			index[speaker] = i
			roles = append(roles, speaker)
			lines = append(lines, nil)
		}
		current = i
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("shakespeare: after line %d: %w", lineNo, err)
	}
	return roles, lines, nil
}

// joinSpeech joins lines with single spaces and collapses runs of spaces, as LEAF does.
func joinSpeech(lines []string) string {
	return strings.Join(strings.FieldsFunc(strings.Join(lines, " "), func(r rune) bool { return r == ' ' }), " ")
}

func truncateForError(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}
