// Command partitionmix loads a dataset spec, partitions its training set as a simulation
// would (the same seed stream as confide sim), and prints the load's wall and CPU time and
// the label mix of the clients: how many hold every class, their sizes, the label skew.
//
//	go run ./scripts/partitionmix -spec examples/spam-bag.yaml -data spamassassin.jsonl.gz \
//	    -partition sender-domain -clients 100
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/confide-fl/confide/data"
)

func main() {
	spec := flag.String("spec", "", "dataset spec file (YAML)")
	path := flag.String("data", "", "the data file, replacing the spec's path")
	partition := flag.String("partition", "dirichlet:0.5:2", "partition spec, as confide sim's partition")
	clients := flag.Int("clients", 100, "number of clients")
	seed := flag.Uint64("seed", 1, "seed, as confide sim's seed")
	flag.Parse()
	if err := run(*spec, *path, *partition, *clients, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "partitionmix:", err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func run(specFile, path, partition string, clients int, seed uint64) error {
	if specFile == "" {
		return fmt.Errorf("give -spec FILE.yaml")
	}
	s, err := data.ReadSchemaFile(specFile)
	if err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuSeconds()
	ld, err := data.LoadSchema(context.Background(), s, data.LoadOptions{Path: path, Seed: seed})
	if err != nil {
		return err
	}
	train := ld.Train
	fmt.Printf("load: %d training and %d test examples, %d features or tokens an example: %.2f s wall, %.2f s CPU\n",
		train.N, ld.Test.N, max(train.Dim, train.SeqLen), time.Since(start).Seconds(), cpuSeconds()-cpu0)
	ps, err := data.ParsePartitionSpec(partition)
	if err != nil {
		return err
	}
	// confide sim's partition stream (sim/population.go).
	parts, err := ps.Partition(train, clients, rand.New(rand.NewPCG(seed, 0x70617274)))
	if err != nil {
		return err
	}
	all, sizes := 0, make([]int, len(parts))
	for c, p := range parts {
		counts := make([]int, train.NumClasses)
		for _, i := range p {
			counts[train.Y[i]]++
		}
		if !slices.Contains(counts, 0) {
			all++
		}
		sizes[c] = len(p)
	}
	slices.Sort(sizes)
	fmt.Printf("partition %s, %d clients: %d hold every one of the %d classes; sizes min %d, median %d, max %d; label skew %.3f",
		partition, len(parts), all, train.NumClasses, sizes[0], sizes[len(sizes)/2], sizes[len(sizes)-1], data.LabelSkew(train.Y, train.NumClasses, parts))
	fmt.Println()
	if train.SenderDomainNames != nil {
		printDomains(train)
	}
	return nil
}

// printDomains prints the number of sender domains and the largest three with their
// class counts.
func printDomains(train *data.Dataset) {
	counts := make([][]int, len(train.SenderDomainNames))
	for i, g := range train.SenderDomain {
		if counts[g] == nil {
			counts[g] = make([]int, train.NumClasses)
		}
		counts[g][train.Y[i]]++
	}
	order := make([]int, len(counts))
	for g := range order {
		order[g] = g
	}
	slices.SortStableFunc(order, func(a, b int) int { return sum(counts[b]) - sum(counts[a]) })
	fmt.Printf("%d sender domains; the largest (examples of each class %v):", len(counts), train.ClassNames)
	for _, g := range order[:min(3, len(order))] {
		fmt.Printf(" %s %v", train.SenderDomainNames[g], counts[g])
	}
	fmt.Println()
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}
