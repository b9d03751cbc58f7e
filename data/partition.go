package data

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// A partition assigns every example of a dataset to exactly one client: client c holds
// the indices parts[c]. Every partitioner here uses each index in [0, N) exactly once
// and, given the same rng state, returns the same partition.

// PartitionIID shuffles [0, n) and deals it into numClients parts whose sizes differ by
// at most one (the first n mod numClients parts get the extra example).
func PartitionIID(n, numClients int, rng *rand.Rand) ([][]int, error) {
	if err := checkClients("iid", n, numClients); err != nil {
		return nil, err
	}
	if err := checkRNG("iid partition", rng); err != nil {
		return nil, err
	}
	perm := rng.Perm(n)
	parts := make([][]int, numClients)
	start := 0
	for c := range parts {
		size := n / numClients
		if c < n%numClients {
			size++
		}
		parts[c] = perm[start : start+size : start+size]
		start += size
	}
	return parts, nil
}

// DefaultDirichletMinSize is the smallest client PartitionDirichlet accepts by default:
// the min_require_size of Li et al. 2022 (NIID-Bench, "Federated Learning on Non-IID Data
// Silos"), whose partition_data is the implementation most papers reuse.
const DefaultDirichletMinSize = 10

// PartitionDirichlet skews labels across clients as Hsu et al. 2019 ("Measuring the
// Effects of Non-Identical Data Distribution") proposed, in the form of NIID-Bench's
// implementation: for each class k, its examples are shuffled and split across the
// clients in proportions p_k ~ Dir(α, …, α). Small α (0.1) gives clients a few dominant
// classes; large α (100) approaches IID label mixes.
//
// Two rules of that implementation are kept, because results in the literature depend on
// them: a client already holding N/numClients examples gets no share of later classes
// (its proportion is zeroed and the rest renormalised), and if some client ends with fewer
// than minSize examples the whole draw is repeated (minSize 0 disables this; the usual
// value is DefaultDirichletMinSize). After 1000 failed draws it returns an error: raise α,
// lower minSize or use fewer clients.
func PartitionDirichlet(labels []int32, numClasses, numClients int, alpha float64, minSize int, rng *rand.Rand) ([][]int, error) {
	n := len(labels)
	if err := checkClients("dirichlet", n, numClients); err != nil {
		return nil, err
	}
	if err := checkRNG("dirichlet partition", rng); err != nil {
		return nil, err
	}
	if !(alpha > 0) || math.IsInf(alpha, 0) {
		return nil, fmt.Errorf("data: dirichlet partition: α = %v, want a positive number (e.g. 0.5)", alpha)
	}
	if minSize < 0 || minSize*numClients > n {
		return nil, fmt.Errorf("data: dirichlet partition: minimum client size %d × %d clients exceeds %d examples; lower the minimum or the number of clients", minSize, numClients, n)
	}
	byClass, err := indicesByClass(labels, numClasses)
	if err != nil {
		return nil, fmt.Errorf("data: dirichlet partition: %w", err)
	}
	capacity := float64(n) / float64(numClients)
	parts := make([][]int, numClients)
	p := make([]float64, numClients)
	keep := make([]bool, numClients)
	const maxDraws = 1000
	for draw := 0; draw < maxDraws; draw++ {
		for c := range parts {
			parts[c] = parts[c][:0]
		}
		for _, idx := range byClass {
			idx = slices.Clone(idx)
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			for c := range keep {
				keep[c] = float64(len(parts[c])) < capacity
			}
			symmetricDirichlet(rng, alpha, keep, p)
			// Split points at floor(cumsum(p)·len), as np.split(idx, (cumsum(p)·len).astype(int)[:-1]).
			start, cum := 0, 0.0
			for c := range parts {
				cum += p[c]
				end := int(cum * float64(len(idx)))
				if c == numClients-1 {
					end = len(idx)
				}
				end = min(max(end, start), len(idx))
				parts[c] = append(parts[c], idx[start:end]...)
				start = end
			}
		}
		smallest := n
		for _, part := range parts {
			smallest = min(smallest, len(part))
		}
		if smallest >= minSize {
			for _, part := range parts {
				rng.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
			}
			return parts, nil
		}
	}
	return nil, fmt.Errorf("data: dirichlet partition: no draw in %d gave every one of %d clients at least %d examples at α = %v; raise α, lower the minimum size or use fewer clients",
		maxDraws, numClients, minSize, alpha)
}

// DefaultShardsPerClient is the number of shards per client in McMahan et al. 2017.
const DefaultShardsPerClient = 2

// PartitionShards is the pathological non-IID partition of McMahan et al. 2017
// ("Communication-Efficient Learning of Deep Networks from Decentralized Data", Sec. 3):
// sort the examples by label, cut them into numClients×shardsPerClient shards of equal
// size, and give each client shardsPerClient shards chosen at random. With MNIST-train
// (60,000), 100 clients and 2 shards each, that is 200 shards of 300 and 600 examples per
// client, most clients seeing only two digits. When the shards do not divide N the first
// N mod shards shards get one extra example, so every example is still used.
func PartitionShards(labels []int32, numClients, shardsPerClient int, rng *rand.Rand) ([][]int, error) {
	n := len(labels)
	if err := checkClients("shards", n, numClients); err != nil {
		return nil, err
	}
	if err := checkRNG("shards partition", rng); err != nil {
		return nil, err
	}
	if shardsPerClient <= 0 {
		return nil, fmt.Errorf("data: shards partition: %d shards per client, want ≥ 1 (McMahan et al. use 2)", shardsPerClient)
	}
	numShards := numClients * shardsPerClient
	if numShards > n {
		return nil, fmt.Errorf("data: shards partition: %d clients × %d shards = %d shards for %d examples; use fewer clients or shards", numClients, shardsPerClient, numShards, n)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// Stable by index within a label, so the shards depend only on the labels.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(labels[a], labels[b]) })
	bounds := make([]int, numShards+1)
	for s := 0; s < numShards; s++ {
		size := n / numShards
		if s < n%numShards {
			size++
		}
		bounds[s+1] = bounds[s] + size
	}
	shardOf := rng.Perm(numShards)
	parts := make([][]int, numClients)
	for c := range parts {
		for _, s := range shardOf[c*shardsPerClient : (c+1)*shardsPerClient] {
			parts[c] = append(parts[c], order[bounds[s]:bounds[s+1]]...)
		}
	}
	return parts, nil
}

// PartitionNatural makes one client per group: part g holds, in index order, the
// examples with groups[i] == g, for g in [0, numGroups). A group without examples yields
// an empty part, so part g always belongs to group g.
func PartitionNatural(groups []int32, numGroups int) ([][]int, error) {
	if numGroups <= 0 {
		return nil, fmt.Errorf("data: natural partition: %d groups, want ≥ 1", numGroups)
	}
	parts := make([][]int, numGroups)
	for i, g := range groups {
		if g < 0 || int(g) >= numGroups {
			return nil, fmt.Errorf("data: natural partition: example %d has group %d, want in [0, %d)", i, g, numGroups)
		}
		parts[g] = append(parts[g], i)
	}
	return parts, nil
}

// PartitionClusters gives each of numClients clients whole clusters: cluster[i] in
// [0, numClusters) is example i's cluster (a sender domain, say), and no cluster is split.
// The clusters are packed greedily, largest first, each to the client holding the fewest
// examples so far, the lowest-numbered client on a tie (Graham's LPT rule, which leaves the
// largest client at most 4/3 of the best packing's, and at least as large as the largest
// cluster). Clusters of equal size are taken in an order drawn from rng, so the seed
// decides which of them go together. A client's examples are in index order. It needs at
// least numClients non-empty clusters.
func PartitionClusters(cluster []int32, numClusters, numClients int, rng *rand.Rand) ([][]int, error) {
	if err := checkClients("cluster", len(cluster), numClients); err != nil {
		return nil, err
	}
	if err := checkRNG("cluster partition", rng); err != nil {
		return nil, err
	}
	members, err := indicesByClass(cluster, numClusters)
	if err != nil {
		return nil, fmt.Errorf("data: cluster partition: %w", err)
	}
	members = slices.DeleteFunc(members, func(m []int) bool { return len(m) == 0 })
	if len(members) < numClients {
		return nil, fmt.Errorf("data: cluster partition: %d clients but %d clusters; every client needs a whole cluster: use at most %d clients", numClients, len(members), len(members))
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	slices.SortStableFunc(members, func(a, b []int) int { return cmp.Compare(len(b), len(a)) })
	parts := make([][]int, numClients)
	for _, m := range members {
		c := 0
		for k := range parts {
			if len(parts[k]) < len(parts[c]) {
				c = k
			}
		}
		parts[c] = append(parts[c], m...)
	}
	for _, part := range parts {
		slices.Sort(part)
	}
	return parts, nil
}

// LabelSkew measures how far the clients' label distributions are from the global one:
// the mean, over non-empty clients, of the total-variation distance
// ½ Σ_k |P_client(k) − P_global(k)|. It is 0 when every client mirrors the global mix
// and approaches 1 − max_k P_global(k) when each client holds a single class.
func LabelSkew(labels []int32, numClasses int, parts [][]int) float64 {
	global := make([]float64, numClasses)
	for _, y := range labels {
		global[y]++
	}
	for k := range global {
		global[k] /= float64(len(labels))
	}
	local := make([]float64, numClasses)
	var sum float64
	nonEmpty := 0
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		clear(local)
		for _, i := range part {
			local[labels[i]]++
		}
		tv := 0.0
		for k := range local {
			tv += math.Abs(local[k]/float64(len(part)) - global[k])
		}
		sum += tv / 2
		nonEmpty++
	}
	if nonEmpty == 0 {
		return 0
	}
	return sum / float64(nonEmpty)
}

func checkClients(kind string, n, numClients int) error {
	if numClients <= 0 {
		return fmt.Errorf("data: %s partition: %d clients, want ≥ 1", kind, numClients)
	}
	if numClients > n {
		return fmt.Errorf("data: %s partition: %d clients for %d examples; every client needs at least one", kind, numClients, n)
	}
	return nil
}

func indicesByClass(labels []int32, numClasses int) ([][]int, error) {
	if numClasses <= 0 {
		return nil, fmt.Errorf("%d classes, want ≥ 1", numClasses)
	}
	byClass := make([][]int, numClasses)
	for i, y := range labels {
		if y < 0 || int(y) >= numClasses {
			return nil, fmt.Errorf("example %d has label %d, want in [0, %d)", i, y, numClasses)
		}
		byClass[y] = append(byClass[y], i)
	}
	return byClass, nil
}

// PartitionKind names a partitioner.
type PartitionKind string

// The partitioners a PartitionSpec can name.
const (
	PartitionKindIID       PartitionKind = "iid"
	PartitionKindDirichlet PartitionKind = "dirichlet"
	PartitionKindShards    PartitionKind = "shards"
	PartitionKindNatural   PartitionKind = "natural"
	// PartitionKindSenderDomain packs the e-mails of each sender domain (the From header's,
	// Dataset.SenderDomain) whole into the clients: PartitionClusters.
	PartitionKindSenderDomain PartitionKind = "sender-domain"
)

// PartitionSpec is a parsed partition specification, as written in configs and flags:
//
//	iid                 PartitionIID
//	dirichlet:ALPHA     PartitionDirichlet with α = ALPHA and DefaultDirichletMinSize
//	dirichlet:ALPHA:MIN the same with minimum client size MIN (0 disables it)
//	shards              PartitionShards with DefaultShardsPerClient
//	shards:S            PartitionShards with S shards per client
//	natural             PartitionNatural over the dataset's Group
//	sender-domain       PartitionClusters over the dataset's SenderDomain: each client
//	                    gets whole sender domains (e-mails without one: one more cluster)
type PartitionSpec struct {
	Kind            PartitionKind
	Alpha           float64 // dirichlet
	MinSize         int     // dirichlet
	ShardsPerClient int     // shards
}

const partitionSpecHelp = "want iid, dirichlet:ALPHA[:MINSIZE], shards[:PER_CLIENT], natural or sender-domain"

// ParsePartitionSpec parses a specification such as "iid", "dirichlet:0.5", "shards:2"
// or "natural" (case-insensitive, surrounding spaces ignored).
func ParsePartitionSpec(s string) (PartitionSpec, error) {
	fields := strings.Split(strings.ToLower(strings.TrimSpace(s)), ":")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	fail := func(why string) (PartitionSpec, error) {
		return PartitionSpec{}, fmt.Errorf("data: partition spec %q: %s; %s", s, why, partitionSpecHelp)
	}
	kind, args := PartitionKind(fields[0]), fields[1:]
	switch kind {
	case PartitionKindIID, PartitionKindNatural, PartitionKindSenderDomain:
		if len(args) > 0 {
			return fail(fmt.Sprintf("%s takes no parameter", kind))
		}
		return PartitionSpec{Kind: kind}, nil
	case PartitionKindDirichlet:
		if len(args) == 0 || len(args) > 2 {
			return fail("dirichlet needs α, e.g. dirichlet:0.5")
		}
		a, err := strconv.ParseFloat(args[0], 64)
		if err != nil || !(a > 0) || math.IsInf(a, 0) {
			return fail(fmt.Sprintf("α %q is not a positive number", args[0]))
		}
		spec := PartitionSpec{Kind: kind, Alpha: a, MinSize: DefaultDirichletMinSize}
		if len(args) == 2 {
			m, err := strconv.Atoi(args[1])
			if err != nil || m < 0 {
				return fail(fmt.Sprintf("minimum client size %q is not a non-negative integer", args[1]))
			}
			spec.MinSize = m
		}
		return spec, nil
	case PartitionKindShards:
		spec := PartitionSpec{Kind: kind, ShardsPerClient: DefaultShardsPerClient}
		if len(args) > 1 {
			return fail("shards takes one parameter")
		}
		if len(args) == 1 {
			k, err := strconv.Atoi(args[0])
			if err != nil || k <= 0 {
				return fail(fmt.Sprintf("shards per client %q is not a positive integer", args[0]))
			}
			spec.ShardsPerClient = k
		}
		return spec, nil
	case "":
		return fail("empty")
	}
	return fail(fmt.Sprintf("unknown partitioner %q", fields[0]))
}

// String returns the specification in the form ParsePartitionSpec reads.
func (p PartitionSpec) String() string {
	switch p.Kind {
	case PartitionKindDirichlet:
		s := "dirichlet:" + strconv.FormatFloat(p.Alpha, 'g', -1, 64)
		if p.MinSize != DefaultDirichletMinSize {
			s += ":" + strconv.Itoa(p.MinSize)
		}
		return s
	case PartitionKindShards:
		return "shards:" + strconv.Itoa(p.ShardsPerClient)
	}
	return string(p.Kind)
}

// Partition splits d across numClients clients as the spec says. A natural partition
// has one client per group of d, so numClients must be 0 or the number of groups.
func (p PartitionSpec) Partition(d *Dataset, numClients int, rng *rand.Rand) ([][]int, error) {
	needLabels := func() error {
		if d.Task != TaskClassify || len(d.Y) != d.N {
			return fmt.Errorf("data: %s partition of %s needs class labels; this dataset has task %v (use iid or natural)", p.Kind, d.Name, d.Task)
		}
		return nil
	}
	switch p.Kind {
	case PartitionKindIID:
		return PartitionIID(d.N, numClients, rng)
	case PartitionKindDirichlet:
		if err := needLabels(); err != nil {
			return nil, err
		}
		return PartitionDirichlet(d.Y, d.NumClasses, numClients, p.Alpha, p.MinSize, rng)
	case PartitionKindShards:
		if err := needLabels(); err != nil {
			return nil, err
		}
		return PartitionShards(d.Y, numClients, p.ShardsPerClient, rng)
	case PartitionKindNatural:
		if len(d.Group) != d.N {
			return nil, fmt.Errorf("data: natural partition of %s: the dataset has no groups (Group); use iid, dirichlet or shards", d.Name)
		}
		g := d.NumGroups()
		if numClients != 0 && numClients != g {
			return nil, fmt.Errorf("data: natural partition of %s has one client per group, %d groups, but %d clients were asked for; set the number of clients to %d (or 0)", d.Name, g, numClients, g)
		}
		return PartitionNatural(d.Group, g)
	case PartitionKindSenderDomain:
		if len(d.SenderDomain) != d.N {
			return nil, fmt.Errorf("data: sender-domain partition of %s: the dataset has no sender domains; it reads the From header of raw e-mails, the text of a jsonl dataset (or the built-in spam); use iid, dirichlet or natural", d.Name)
		}
		return PartitionClusters(d.SenderDomain, len(d.SenderDomainNames), numClients, rng)
	}
	return nil, errors.New("data: partition spec with unknown kind " + strconv.Quote(string(p.Kind)) + "; " + partitionSpecHelp)
}
