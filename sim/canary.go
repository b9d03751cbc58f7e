package sim

import (
	"fmt"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// Canary clients (Options.Canaries) are how a privacy audit (package audit) plants users in
// a federation: each joins the population after the partition's clients, is sampled, sent
// tasks and runs the real round logic (client.Party: clipping, user-level noise, secure
// aggregation) like any other client, but its Trainer answers fit tasks with an update of
// the audit's choosing instead of training on data. In the population a canary holds one
// row of the training set, which it never reads; that row only gives it a size (one
// example) for weights and virtual durations.

// addCanaries appends n canary clients to the population.
func (p *population) addCanaries(n int) error {
	if n == 0 {
		return nil
	}
	if p.parts == nil {
		return fmt.Errorf("canary clients join a partitioned population; partition sample:N draws clients on demand (use iid, dirichlet:A or shards:K)")
	}
	for range n {
		p.parts = append(p.parts, []int32{0})
	}
	p.n = len(p.parts)
	return nil
}

// canary returns client k's canary trainer, nil when k is a data client.
func (r *run) canary(k int) client.Trainer {
	if i := k - (r.pop.n - len(r.opts.Canaries)); i >= 0 && i < len(r.opts.Canaries) {
		return r.opts.Canaries[i]
	}
	return nil
}

// ModelSpec returns the model spec a run of c trains on the training set ds: c's model
// completed with the dataset's sizes and checked, as Run does.
func ModelSpec(c Config, ds *data.Dataset) (model.Spec, error) {
	return specFor(c.WithDefaults().Model, ds)
}
