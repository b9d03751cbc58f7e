package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bagMails returns 48 raw e-mails, one JSON object a line: ham talks of meetings, spam of
// offers, each with a few words of the other's and a From header.
func bagMails() string {
	ham := []string{"meeting", "notes", "lunch", "project", "agenda", "thanks"}
	spam := []string{"cheap", "offer", "winner", "pills", "click", "free"}
	var b strings.Builder
	for i := range 48 {
		label, own, other := "ham", ham, spam
		if i%2 == 1 {
			label, own, other = "spam", spam, ham
		}
		words := []string{own[i%6], own[(i+1)%6], own[(i+3)%6], other[i%6], own[(i+2)%6]}
		fmt.Fprintf(&b, `{"id": "m%d", "label": %q, "text": "From: user%d@%s.example\nSubject: %d\n\n%s"}`+"\n",
			i, label, i, label, i, strings.Join(words, " "))
	}
	return b.String()
}

// TestTrainOnBagOfWordsAndPredictReadsRawTexts: confide train on a jsonl spec with
// text.encoding: bag trains an mlp on the bag of words and records the schema (encoding
// and vocabulary); model predict reads raw e-mails with it (and a text without a
// vocabulary word), giving the accuracy model evaluate gives on the same file; a sequence
// model on the bag is refused with the fix named.
func TestTrainOnBagOfWordsAndPredictReadsRawTexts(t *testing.T) {
	dir := t.TempDir()
	mails := filepath.Join(dir, "mails.jsonl")
	spec := filepath.Join(dir, "bag.yaml")
	if err := os.WriteFile(mails, []byte(bagMails()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(`format: jsonl
path: mails.jsonl
test_fraction: 0.25
label: {column: label, classes: [ham, spam]}
text: {encoding: bag, min_count: 1, strip_email_headers: true}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	modelFile := filepath.Join(dir, "bag.confide")
	runJSON(t, "train", "--dataset", spec, "--model", "mlp", "--hidden", "8", "--epochs", "30", "--lr", "0.5", "--batch", "8", "--out", modelFile)
	m, s := loadRecordedSchema(t, modelFile)
	if !s.Text.IsBag() || len(s.Text.Vocab) != 12 || m.Spec.Input != 12 {
		t.Fatalf("recorded schema %s, model input %d: want encoding bag, the 12 words, input 12", m.Meta.Dataset, m.Spec.Input)
	}

	r := predictJSON(t, modelFile, mails)
	if r.Count != 48 {
		t.Fatalf("%d predictions, want 48", r.Count)
	}
	correct := 0
	for i, p := range r.Predictions {
		if want := []string{"ham", "spam"}[i%2]; p.Class == want {
			correct++
		}
		if p.ID != fmt.Sprintf("m%d", i) {
			t.Errorf("prediction %d has id %v", i, p.ID)
		}
	}
	ev := runJSON(t, "model", "evaluate", modelFile, "--data-path", mails)
	if acc := float64(correct) / 48; acc != ev["accuracy"].(float64) || acc < 0.9 {
		t.Errorf("predict's accuracy on the raw e-mails %v, model evaluate's %v; want equal and ≥ 0.9", acc, ev["accuracy"])
	}

	none := filepath.Join(dir, "none.jsonl")
	if err := os.WriteFile(none, []byte(`{"text": "words the vocabulary lacks"}`+"\n"+`""`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := predictJSON(t, modelFile, none); r.Count != 2 || r.Predictions[0].Probabilities[0] != r.Predictions[1].Probabilities[0] {
		t.Errorf("texts without a vocabulary word: %+v; want two predictions of the zero vector", r)
	}

	_, err := runConfide(t, "train", "--dataset", spec, "--model", "lstm", "--epochs", "1")
	if err == nil || !strings.Contains(err.Error(), "without text.encoding: bag") {
		t.Errorf("lstm on a bag of words: %v, want the fix named", err)
	}
}
