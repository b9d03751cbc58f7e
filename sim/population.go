package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/data"
)

// LoadDataset loads the training and central test sets a configuration names. For the
// synthetic dataset it generates one device per client (Clients, or 30 when 0) and holds
// out TestFraction of each device for the test set; the devices are train's groups.
func LoadDataset(ctx context.Context, c Config) (train, test *data.Dataset, err error) {
	train, test, _, _, err = loadDataset(ctx, c)
	return train, test, err
}

// loadDataset is LoadDataset, also returning the schema a dataset spec ships to the
// statistics round when it leaves statistics to estimate (nil otherwise); the rows of
// train and test then hold the estimated columns' raw values until ApplyEstimates.
func loadDataset(ctx context.Context, c Config) (train, test *data.Dataset, schema, pending *data.Schema, err error) {
	d := c.Dataset
	switch d.Name {

	case "mnist":
		train, test, err = data.LoadMNISTContext(ctx, d.Dir)
	case "fashion-mnist":
		train, test, err = data.LoadFashionMNIST(d.Dir)
	case "shakespeare":
		if d.Path == "" {
			if d.Path, err = data.Fetch(ctx, "shakespeare", data.FetchOptions{}); err != nil {
				return nil, nil, nil, nil, fmt.Errorf("dataset.path is empty and %w", err)
			}
		}
		var sc *data.ShakespeareCorpus
		if sc, err = data.LoadShakespeare(d.Path, data.ShakespeareOptions{SeqLen: d.SeqLen}); err == nil {
			train, test = sc.Train, sc.Test
		}
	case "spam":
		if d.Path == "" {
			if d.Path, err = data.Fetch(ctx, "spam", data.FetchOptions{}); err != nil {
				return nil, nil, nil, nil, fmt.Errorf("dataset.path is empty and %w", err)
			}
		}
		var sc *data.SpamCorpus
		rng := rand.New(rand.NewPCG(c.Seed, 0x7370616d))
		if sc, err = data.LoadSpamAssassin(d.Path, data.SpamOptions{MaxLen: d.SeqLen}, rng); err == nil {
			train, test = sc.Train, sc.Test
		}
	case "synthetic":
		s := d.Synthetic
		devices := c.Clients
		if devices == 0 {
			devices = 30
		}
		rng := rand.New(rand.NewPCG(c.Seed, 0x73796e74))
		var all *data.Dataset
		all, _, err = data.Synthetic(data.SyntheticOptions{Alpha: s.Alpha, Beta: s.Beta, IID: s.IID, NumDevices: devices, Dim: s.Dim, NumClasses: s.Classes}, rng)
		if err == nil {
			var tr, te []int
			if tr, te, err = data.StratifiedSplit(all.Group, s.TestFraction, rng); err == nil {
				train, test = all.Subset(tr), all.Subset(te)
			}
		}
	default:
		if !data.IsSchemaFile(d.Name) {
			return nil, nil, nil, nil, fmt.Errorf("dataset.name = %q: use mnist, fashion-mnist, shakespeare, spam, synthetic or a dataset spec file", d.Name)
		}
		train, test, schema, pending, err = loadSpecDataset(ctx, c)
	}
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	if d.MaxTest > 0 && test.N > d.MaxTest {
		idx := make([]int, d.MaxTest)
		for i := range idx {
			idx[i] = i
		}
		test = test.Subset(idx)
	}
	return train, test, schema, pending, nil
}

// loadSpecDataset loads the dataset of a spec file (dataset.name: FILE.yaml), dataset.path
// replacing its training data. A spec that leaves statistics to estimate (a range without
// mean and std) is read with their raw values, and pending is the schema the federation's
// statistics round estimates them for; schema is the spec as the rows were encoded with it
// (classes and categories filled in), for the model file, when it is complete.
func loadSpecDataset(ctx context.Context, c Config) (train, test *data.Dataset, schema, pending *data.Schema, err error) {
	s, err := data.ReadSchemaFile(c.Dataset.Name)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	load := s
	if len(s.Estimates()) > 0 {
		load = s.RawForEstimates()
	}
	ld, err := data.LoadSchema(ctx, load, data.LoadOptions{Path: c.Dataset.Path, Seed: c.Seed})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if ld.Test == nil || ld.Test.N == 0 {
		return nil, nil, nil, nil, fmt.Errorf("no test rows: set test_path, or a test_fraction that holds some out")
	}
	if len(s.Estimates()) > 0 {
		return ld.Train, ld.Test, nil, s.PendingEstimates(ld.Schema), nil
	}
	return ld.Train, ld.Test, ld.Schema, nil, nil
}

// population is the clients' training data: client k holds rows of the shared training
// set, either listed (a partition: its indices are all an idle client costs) or drawn on
// demand from a seeded generator (sample:n, for populations far larger than the dataset).
type population struct {
	train  *data.Dataset
	parts  [][]int32 // partition; nil for sampled populations
	sample int       // examples per client of a sampled population
	seed   uint64
	n      int
}

func newPopulation(train *data.Dataset, c Config) (*population, error) {
	p := &population{train: train, seed: c.Seed, n: c.Clients}
	if n, ok := parseSamplePartition(c.Partition); ok {
		if n > train.N {
			return nil, fmt.Errorf("partition = %q: %d examples per client, the training set has %d", c.Partition, n, train.N)
		}
		p.sample = n
		return p, nil
	}
	spec, err := data.ParsePartitionSpec(c.Partition)
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	clients := c.Clients
	if spec.Kind == data.PartitionKindNatural {
		g := train.NumGroups()
		if clients != 0 && clients != g {
			return nil, fmt.Errorf("clients = %d with partition natural: dataset %s has %d groups (one client each); set clients: %d (or 0)", clients, train.Name, g, g)
		}
		clients = g
	}
	parts, err := spec.Partition(train, clients, rand.New(rand.NewPCG(c.Seed, 0x70617274)))
	if err != nil {
		return nil, fmt.Errorf("partition %s of %d clients: %w", c.Partition, clients, err)
	}
	p.n = len(parts)
	p.parts = make([][]int32, len(parts))
	for k, idx := range parts {
		if len(idx) == 0 {
			return nil, fmt.Errorf("partition %s leaves client %d without examples: use fewer clients or another partition", c.Partition, k)
		}
		q := make([]int32, len(idx))
		for i, v := range idx {
			q[i] = int32(v)
		}
		p.parts[k] = q
	}
	return p, nil
}

// size is the number of examples client k holds.
func (p *population) size(k int) int {
	if p.parts == nil {
		return p.sample
	}
	return len(p.parts[k])
}

// indices appends client k's row indices to dst[:0].
func (p *population) indices(k int, dst []int) []int {
	dst = dst[:0]
	if p.parts != nil {
		for _, v := range p.parts[k] {
			dst = append(dst, int(v))
		}
		return dst
	}
	// A sampled client's rows: n distinct rows by Floyd's algorithm, from a generator
	// seeded by (seed, k), so they are the same every time the client is materialised.
	rng := rand.New(rand.NewPCG(p.seed, mix(0x73616d70, uint64(k))))
	n := p.train.N
	seen := make(map[int]bool, p.sample)
	for j := n - p.sample; j < n; j++ {
		t := rng.IntN(j + 1)
		if seen[t] {
			t = j
		}
		seen[t] = true
		dst = append(dst, t)
	}
	return dst
}

// view gathers client k's rows into buffers b owns and returns a dataset over them; it is
// valid until b is reused.
func (p *population) view(k int, b *viewBuffers) *data.Dataset {
	b.idx = p.indices(k, b.idx)
	p.train.Gather(&b.batch, b.idx)
	t := p.train
	d := &b.ds
	*d = data.Dataset{
		Name: t.Name, N: len(b.idx), Dim: t.Dim, Shape: t.Shape, Embedded: t.Embedded, SeqLen: t.SeqLen, VocabSize: t.VocabSize,
		NumClasses: t.NumClasses, ClassNames: t.ClassNames, Task: t.Task,
		X: b.batch.X, Tokens: b.batch.Tokens, Lengths: b.batch.Lengths, Y: b.batch.Y, Targets: b.batch.Targets,
		Values: b.batch.Values, NumValues: t.NumValues, ValueNames: t.ValueNames, ValueNormalization: t.ValueNormalization,
	}
	return d
}

// viewBuffers are a worker's reusable buffers for materialising clients' datasets.
type viewBuffers struct {
	idx   []int
	batch data.Batch
	ds    data.Dataset
}

// mix hashes values into one 64-bit number (SplitMix64 steps, Steele et al. 2014): the
// draws of a run are functions of the seed and of (client, round, purpose), independent of
// the order in which they are made.
func mix(vals ...uint64) uint64 {
	h := uint64(0x6a09e667f3bcc908)
	for _, v := range vals {
		h = splitmix(h ^ splitmix(v))
	}
	return h
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit returns a uniform draw in [0, 1) determined by vals.
func unit(vals ...uint64) float64 { return float64(mix(vals...)>>11) / (1 << 53) }

// normal returns a standard normal draw determined by vals (Box–Muller).
func normal(vals ...uint64) float64 {
	u1 := unit(append(vals, 1)...)
	u2 := unit(append(vals, 2)...)
	return math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
}
