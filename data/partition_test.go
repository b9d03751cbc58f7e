package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// mnistTrainCounts are the class counts of MNIST-train (LeCun et al.).
var mnistTrainCounts = []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}

// labelsWithCounts returns labels with the given class counts, in shuffled order.
func labelsWithCounts(counts []int, seed uint64) []int32 {
	var labels []int32
	for k, c := range counts {
		for range c {
			labels = append(labels, int32(k))
		}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	rng.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	return labels
}

// checkExactCover fails unless parts uses every index in [0, n) exactly once.
func checkExactCover(t *testing.T, parts [][]int, n int) {
	t.Helper()
	seen := make([]bool, n)
	total := 0
	for c, part := range parts {
		for _, i := range part {
			if i < 0 || i >= n {
				t.Fatalf("client %d holds index %d outside [0, %d)", c, i, n)
			}
			if seen[i] {
				t.Fatalf("index %d assigned twice", i)
			}
			seen[i] = true
			total++
		}
	}
	if total != n {
		t.Fatalf("%d of %d indices assigned", total, n)
	}
}

func TestPartitionersCoverAndAreDeterministic(t *testing.T) {
	labels := labelsWithCounts([]int{50, 30, 20, 7, 1}, 1)
	groups := make([]int32, len(labels))
	for i := range groups {
		groups[i] = int32(i % 6)
	}
	n := len(labels)
	cases := []struct {
		name string
		run  func(rng *rand.Rand) ([][]int, error)
	}{
		{"iid/n=108/clients=10", func(r *rand.Rand) ([][]int, error) { return PartitionIID(n, 10, r) }},
		{"iid/n=108/clients=108", func(r *rand.Rand) ([][]int, error) { return PartitionIID(n, n, r) }},
		{"dirichlet/alpha=0.1/clients=5", func(r *rand.Rand) ([][]int, error) { return PartitionDirichlet(labels, 5, 5, 0.1, 2, r) }},
		{"dirichlet/alpha=1000/clients=7", func(r *rand.Rand) ([][]int, error) { return PartitionDirichlet(labels, 5, 7, 1000, 0, r) }},
		{"shards/clients=10/per=2", func(r *rand.Rand) ([][]int, error) { return PartitionShards(labels, 10, 2, r) }},
		{"shards/clients=7/per=3", func(r *rand.Rand) ([][]int, error) { return PartitionShards(labels, 7, 3, r) }},
		{"natural/groups=6", func(*rand.Rand) ([][]int, error) { return PartitionNatural(groups, 6) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := c.run(rand.New(rand.NewPCG(9, 9)))
			if err != nil {
				t.Fatal(err)
			}
			checkExactCover(t, a, n)
			b, _ := c.run(rand.New(rand.NewPCG(9, 9)))
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatal("same seed, different partition")
			}
		})
	}
}

func TestPartitionIIDStatistics(t *testing.T) {
	labels := labelsWithCounts(mnistTrainCounts, 2)
	for _, clients := range []int{10, 100, 7} {
		t.Run(fmt.Sprintf("clients=%d", clients), func(t *testing.T) {
			parts, err := PartitionIID(len(labels), clients, rand.New(rand.NewPCG(1, 0)))
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := len(labels), 0
			for _, p := range parts {
				lo, hi = min(lo, len(p)), max(hi, len(p))
			}
			if hi-lo > 1 {
				t.Errorf("client sizes from %d to %d, want equal ±1", lo, hi)
			}
			// Sampling noise alone: ≈ 0.05 for 600 examples per client over 10 classes.
			if tv := LabelSkew(labels, 10, parts); tv > 0.08 {
				t.Errorf("mean TV from the global label mix = %.3f, want < 0.08", tv)
			}
		})
	}
}

func TestPartitionDirichletStatistics(t *testing.T) {
	labels := labelsWithCounts(mnistTrainCounts, 3)
	// Measured mean TV on MNIST-train class counts, 10 clients (3 seeds):
	// α=0.1: 0.72–0.75, α=0.5: 0.47–0.49, α=10: 0.11–0.13, α=100: 0.03–0.04.
	cases := []struct {
		alpha  float64
		lo, hi float64
	}{
		{0.1, 0.6, 0.9},
		{0.5, 0.35, 0.6},
		{10, 0.05, 0.2},
		{100, 0, 0.06},
	}
	prev := 1.0
	for _, c := range cases {
		t.Run(fmt.Sprintf("alpha=%v", c.alpha), func(t *testing.T) {
			parts, err := PartitionDirichlet(labels, 10, 10, c.alpha, DefaultDirichletMinSize, rand.New(rand.NewPCG(4, 0)))
			if err != nil {
				t.Fatal(err)
			}
			checkExactCover(t, parts, len(labels))
			for i, p := range parts {
				if len(p) < DefaultDirichletMinSize {
					t.Errorf("client %d has %d examples, below the minimum %d", i, len(p), DefaultDirichletMinSize)
				}
			}
			tv := LabelSkew(labels, 10, parts)
			if tv < c.lo || tv > c.hi {
				t.Errorf("mean TV = %.3f, want in [%v, %v]", tv, c.lo, c.hi)
			}
			if tv >= prev {
				t.Errorf("mean TV = %.3f did not drop below %.3f of the smaller α", tv, prev)
			}
			prev = tv
		})
	}
}

func TestPartitionDirichletTinyAlphaGivesUpClearly(t *testing.T) {
	labels := labelsWithCounts([]int{100, 100}, 1)
	_, err := PartitionDirichlet(labels, 2, 20, 0.001, 10, rand.New(rand.NewPCG(1, 0)))
	if err == nil || !strings.Contains(err.Error(), "raise α") {
		t.Fatalf("error %v, want one advising to raise α", err)
	}
}

func TestPartitionShardsMNIST(t *testing.T) {
	train, _ := loadMNISTOnce(t)
	parts, err := PartitionShards(train.Y, 100, 2, rand.New(rand.NewPCG(5, 0)))
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, parts, train.N)
	twoOrFewer := 0
	for c, p := range parts {
		if len(p) != 600 {
			t.Fatalf("client %d has %d examples, want 600 (2 shards of 300)", c, len(p))
		}
		seen := map[int32]bool{}
		for _, i := range p {
			seen[train.Y[i]] = true
		}
		// A shard of 300 is smaller than every class, so it spans at most 2 labels.
		if len(seen) > 4 {
			t.Errorf("client %d sees %d labels, want ≤ 4", c, len(seen))
		}
		if len(seen) <= 2 {
			twoOrFewer++
		}
	}
	if twoOrFewer < 85 {
		t.Errorf("%d of 100 clients see ≤ 2 labels, want most (≥ 85)", twoOrFewer)
	}
	if tv := LabelSkew(train.Y, 10, parts); tv < 0.7 {
		t.Errorf("mean TV = %.3f, want ≥ 0.7 for the pathological partition", tv)
	}
}

func TestPartitionShardsUneven(t *testing.T) {
	labels := labelsWithCounts([]int{11, 12}, 1) // 23 examples, 6 shards of 4 or 3
	parts, err := PartitionShards(labels, 3, 2, rand.New(rand.NewPCG(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, parts, len(labels))
	for c, p := range parts {
		if len(p) < 6 || len(p) > 8 {
			t.Errorf("client %d has %d examples, want 6 to 8", c, len(p))
		}
	}
}

func TestPartitionNatural(t *testing.T) {
	parts, err := PartitionNatural([]int32{2, 0, 2, 2, 0}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(parts) != "[[1 4] [] [0 2 3] []]" {
		t.Fatalf("parts = %v", parts)
	}
	if _, err := PartitionNatural([]int32{0, 5}, 4); err == nil || !strings.Contains(err.Error(), "example 1 has group 5") {
		t.Fatalf("error %v", err)
	}
}

func TestPartitionErrors(t *testing.T) {
	labels := []int32{0, 1, 0, 1}
	rng := rand.New(rand.NewPCG(1, 0))
	cases := []struct {
		name string
		run  func() ([][]int, error)
		want string
	}{
		{"iid no clients", func() ([][]int, error) { return PartitionIID(4, 0, rng) }, "0 clients"},
		{"iid too many clients", func() ([][]int, error) { return PartitionIID(4, 5, rng) }, "5 clients for 4 examples"},
		{"dirichlet alpha", func() ([][]int, error) { return PartitionDirichlet(labels, 2, 2, 0, 0, rng) }, "α = 0"},
		{"dirichlet label range", func() ([][]int, error) { return PartitionDirichlet([]int32{0, 3}, 2, 1, 1, 0, rng) }, "label 3"},
		{"dirichlet min size", func() ([][]int, error) { return PartitionDirichlet(labels, 2, 2, 1, 3, rng) }, "exceeds 4 examples"},
		{"shards zero", func() ([][]int, error) { return PartitionShards(labels, 2, 0, rng) }, "0 shards"},
		{"shards too many", func() ([][]int, error) { return PartitionShards(labels, 3, 2, rng) }, "6 shards for 4"},
		{"iid nil rng", func() ([][]int, error) { return PartitionIID(4, 2, nil) }, "nil *rand.Rand"},
		{"dirichlet nil rng", func() ([][]int, error) { return PartitionDirichlet(labels, 2, 2, 1, 0, nil) }, "nil *rand.Rand"},
		{"shards nil rng", func() ([][]int, error) { return PartitionShards(labels, 2, 1, nil) }, "nil *rand.Rand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.run(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParsePartitionSpec(t *testing.T) {
	cases := []struct {
		in   string
		want PartitionSpec
		str  string
		err  string
	}{
		{in: "iid", want: PartitionSpec{Kind: PartitionKindIID}, str: "iid"},
		{in: " IID ", want: PartitionSpec{Kind: PartitionKindIID}, str: "iid"},
		{in: "natural", want: PartitionSpec{Kind: PartitionKindNatural}, str: "natural"},
		{in: "dirichlet:0.5", want: PartitionSpec{Kind: PartitionKindDirichlet, Alpha: 0.5, MinSize: 10}, str: "dirichlet:0.5"},
		{in: "dirichlet:1e-1:0", want: PartitionSpec{Kind: PartitionKindDirichlet, Alpha: 0.1, MinSize: 0}, str: "dirichlet:0.1:0"},
		{in: "shards", want: PartitionSpec{Kind: PartitionKindShards, ShardsPerClient: 2}, str: "shards:2"},
		{in: "shards:3", want: PartitionSpec{Kind: PartitionKindShards, ShardsPerClient: 3}, str: "shards:3"},
		{in: "", err: "empty"},
		{in: "dirichlet", err: "needs α"},
		{in: "dirichlet:-1", err: "not a positive number"},
		{in: "dirichlet:nan", err: "not a positive number"},
		{in: "dirichlet:0.5:x", err: "minimum client size"},
		{in: "shards:0", err: "not a positive integer"},
		{in: "shards:2:3", err: "one parameter"},
		{in: "iid:3", err: "no parameter"},
		{in: "label-skew", err: `unknown partitioner "label-skew"`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParsePartitionSpec(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "want iid") {
					t.Fatalf("got %+v, error %v; want error containing %q and the accepted forms", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want || got.String() != c.str {
				t.Fatalf("got %+v (%q), %v; want %+v (%q)", got, got.String(), err, c.want, c.str)
			}
			if back, err := ParsePartitionSpec(got.String()); err != nil || back != got {
				t.Fatalf("round trip of %q: %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestPartitionSpecOnDataset(t *testing.T) {
	d := denseFixture()
	rng := rand.New(rand.NewPCG(1, 0))
	for _, s := range []string{"iid", "dirichlet:1:0", "shards:1", "natural"} {
		spec, _ := ParsePartitionSpec(s)
		clients := 2
		parts, err := spec.Partition(d, clients, rng)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		checkExactCover(t, parts, d.N)
	}
	natural, _ := ParsePartitionSpec("natural")
	if _, err := natural.Partition(d, 3, rng); err == nil || !strings.Contains(err.Error(), "set the number of clients to 2") {
		t.Errorf("natural with the wrong client count: %v", err)
	}
	noGroups := d.Subset([]int{0, 1})
	noGroups.Group = nil
	if _, err := natural.Partition(noGroups, 0, rng); err == nil || !strings.Contains(err.Error(), "no groups") {
		t.Errorf("natural without groups: %v", err)
	}
	shards, _ := ParsePartitionSpec("shards")
	if _, err := shards.Partition(textFixture(), 1, rng); err == nil || !strings.Contains(err.Error(), "needs class labels") {
		t.Errorf("shards of a next-token dataset: %v", err)
	}
	if parts, err := natural.Partition(d, 0, rng); err != nil || !slices.Equal(parts[1], []int{2, 3}) {
		t.Errorf("natural: %v %v", parts, err)
	}
}
