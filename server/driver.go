package server

import "fmt"

// Driver carries out a Ready in the order the contract requires: Persist durably first;
// then deliver Send, then Revoke (so a task sent and revoked by one Ready is never seen);
// then hand over the Work and the central evaluations; then the notices. The gRPC service and the
// simulator's in-memory network both apply every Ready through it, each supplying what
// delivering, evaluating and noticing mean for it (mailboxes that clients pull, or virtual
// clients scheduled in simulated time).
type Driver struct {
	Store Store
	// Deliver queues the tasks of send for their clients and withdraws the revoked ones.
	Deliver func(send []Envelope, revoke []Revocation) error
	// Evaluate runs or schedules central evaluations (answered with Evaluated events).
	Evaluate func([]EvaluationRequest) error
	// Work runs or schedules computations, one at a time in order, stepping the event
	// each Run returns.
	Work func([]Work) error
	// Notify acts on one notice (metrics, logs, progress).
	Notify func(Notice)
}

// Apply carries out r. It stops at the first error: nothing after a failed Persist may go
// out.
func (d Driver) Apply(r Ready) error {
	if len(r.Persist) > 0 {
		if err := d.Store.Append(r.Persist); err != nil {
			return fmt.Errorf("server: store: %w", err)
		}
	}
	if d.Deliver != nil && (len(r.Send) > 0 || len(r.Revoke) > 0) {
		if err := d.Deliver(r.Send, r.Revoke); err != nil {
			return err
		}
	}
	if len(r.Work) > 0 {
		if d.Work == nil {
			return fmt.Errorf("server: the driver cannot run the %d computations a Ready lists", len(r.Work))
		}
		if err := d.Work(r.Work); err != nil {
			return err
		}
	}
	if d.Evaluate != nil && len(r.Evaluate) > 0 {
		if err := d.Evaluate(r.Evaluate); err != nil {
			return err
		}
	}
	if d.Notify != nil {
		for _, n := range r.Notices {
			d.Notify(n)
		}
	}
	return nil
}
