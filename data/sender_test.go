package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSenderDomain(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"plain", "From: ann@example.org\n\nhi", "example.org"},
		{"display name, upper case", "Subject: x\nFrom: \"Ann B\" <Ann@Mail.Example.ORG>\n\nhi", "mail.example.org"},
		{"mbox separator line", "From ann@a.com  Thu Aug 22 12:36:23 2002\nReturn-Path: <x@y.z>\nFrom: bob@b.net\n\nhi", "b.net"},
		{"folded header", "From: Bob\n <bob@b.net>\nTo: c@d.e\n\nhi", "b.net"},
		{"malformed header line, net/mail refuses", "Received from nowhere\nFrom: carol@c.info\n\nhi", "c.info"},
		{"unparseable address, first word with @", "From: carol@c.info (Carol) <junk\n\nhi", "c.info"},
		{"trailing dot", "From: d@d.org.\n\nhi", "d.org"},
		{"no From header", "Subject: hi\n\nbody", UnknownSenderDomain},
		{"From without an address", "From: Carol\n\nhi", UnknownSenderDomain},
		{"not an e-mail", "just some words: here", UnknownSenderDomain},
		{"empty", "", UnknownSenderDomain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SenderDomain(c.text); got != c.want {
				t.Fatalf("SenderDomain(%q) = %q, want %q", c.text, got, c.want)
			}
		})
	}
}

// TestPartitionClusters: every client gets whole clusters, greedily balanced (largest
// first to the smallest client), the same for the same seed; too few clusters is an error
// naming the most clients there can be.
func TestPartitionClusters(t *testing.T) {
	// Cluster sizes 6, 5, 4, 3, 3, 2, 1: LPT over 3 clients gives {6, 2}, {5, 3}, {4, 3, 1}.
	sizes := []int{3, 6, 1, 4, 2, 5, 3}
	var cluster []int32
	for c, n := range sizes {
		for range n {
			cluster = append(cluster, int32(c))
		}
	}
	rng := rand.New(rand.NewPCG(3, 0))
	rng.Shuffle(len(cluster), func(i, j int) { cluster[i], cluster[j] = cluster[j], cluster[i] })
	for _, clients := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("clients=%d", clients), func(t *testing.T) {
			parts, err := PartitionClusters(cluster, len(sizes), clients, rand.New(rand.NewPCG(5, 0)))
			if err != nil {
				t.Fatal(err)
			}
			checkExactCover(t, parts, len(cluster))
			owner := map[int32]int{}
			var got []int
			for c, part := range parts {
				if !slices.IsSorted(part) {
					t.Errorf("client %d: indices not in order", c)
				}
				for _, i := range part {
					if o, ok := owner[cluster[i]]; ok && o != c {
						t.Fatalf("cluster %d split between clients %d and %d", cluster[i], o, c)
					}
					owner[cluster[i]] = c
				}
				got = append(got, len(part))
			}
			want := map[int][]int{1: {24}, 3: {8, 8, 8}, 7: {3, 6, 1, 4, 2, 5, 3}}[clients]
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("client sizes %v, want %v", got, want)
			}
			again, _ := PartitionClusters(cluster, len(sizes), clients, rand.New(rand.NewPCG(5, 0)))
			if fmt.Sprint(again) != fmt.Sprint(parts) {
				t.Error("same seed, different partition")
			}
		})
	}
	if _, err := PartitionClusters(cluster, len(sizes)+2, 8, rand.New(rand.NewPCG(5, 0))); err == nil || !strings.Contains(err.Error(), "use at most 7 clients") {
		t.Errorf("8 clients, 7 non-empty clusters: %v", err)
	}
}

// TestSenderDomainPartitionOfJSONL: partition sender-domain of a jsonl dataset's e-mails
// gives every client whole sender domains, e-mails without a From address making one
// cluster; a dataset of texts that are not e-mails has none and the error says so.
func TestSenderDomainPartitionOfJSONL(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	domains := []string{"a.org", "a.org", "a.org", "b.net", "b.net", "c.com", "", "a.org", "d.de", ""}
	for i, d := range domains {
		from := ""
		if d != "" {
			from = fmt.Sprintf(`From: user%d@%s\n`, i, strings.ToUpper(d))
		}
		fmt.Fprintf(&b, `{"text": "%sSubject: %d\n\nbody %d", "label": "%s"}`+"\n", from, i, i, []string{"ham", "spam"}[i%2])
	}
	s, ld := loadMails(t, dir, b.String(), "{min_count: 1}")
	d := ld.Train
	if want := []string{UnknownSenderDomain, "a.org", "b.net", "c.com", "d.de"}; !slices.Equal(d.SenderDomainNames, want) {
		t.Fatalf("sender domains %v, want %v", d.SenderDomainNames, want)
	}
	spec, err := ParsePartitionSpec("sender-domain")
	if err != nil || spec.String() != "sender-domain" {
		t.Fatalf("parse: %+v, %v", spec, err)
	}
	parts, err := spec.Partition(d, 3, rand.New(rand.NewPCG(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, parts, d.N)
	// a.org (4 e-mails) alone; b.net and the unknown (2 each) and c.com, d.de (1 each)
	// packed into the other two: 4, 3, 3.
	var sizes []int
	for _, p := range parts {
		seen := map[string]bool{}
		for _, i := range p {
			seen[d.SenderDomainNames[d.SenderDomain[i]]] = true
		}
		if seen["a.org"] && len(seen) > 1 {
			t.Errorf("a client holds a.org and %v", seen)
		}
		sizes = append(sizes, len(p))
	}
	if slices.Sort(sizes); !slices.Equal(sizes, []int{3, 3, 4}) {
		t.Errorf("client sizes %v, want [3 3 4]", sizes)
	}
	if _, err := spec.Partition(d, 6, rand.New(rand.NewPCG(1, 0))); err == nil || !strings.Contains(err.Error(), "use at most 5 clients") {
		t.Errorf("6 clients, 5 sender domains: %v", err)
	}

	writeFile(t, dir, "plain.jsonl", `{"text": "hello there", "label": "ham"}`+"\n"+`{"text": "cheap pills", "label": "spam"}`+"\n")
	plain, err := LoadSchema(context.Background(), s, LoadOptions{Path: filepath.Join(dir, "plain.jsonl"), NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Partition(plain.Train, 1, rand.New(rand.NewPCG(1, 0))); err == nil || !strings.Contains(err.Error(), "no sender domains") {
		t.Errorf("texts without e-mail headers: %v", err)
	}
	if _, err := ParsePartitionSpec("sender-domain:100"); err == nil || !strings.Contains(err.Error(), "takes no parameter") {
		t.Errorf("sender-domain:100: %v", err)
	}
}
