// Package audit measures privacy empirically: a lower bound on the ε a mechanism really
// spends, from canaries planted in one training run (Steinke, Nasr & Jagielski 2023,
// "Privacy auditing with one (1) training run"). An accountant's ε is an upper bound that
// holds if the mechanism is built as analysed; an audit's bound above it is evidence that
// it is not (noise missing or mis-scaled, clipping skipped, sampling not as accounted).
//
// The statistics (bound.go): m canaries are each included with probability ½; the auditor
// ranks them by a score and guesses "in" for the top, "out" for the bottom; the number of
// right guesses rejects every ε below the reported bound at the given confidence
// (Evaluate, PValue, EpsilonLower), Bonferroni-corrected over the guess counts tried.
//
// The canaries (canary.go), and what the auditor sees:
//
//	mode       canary                                          score
//	white-box  Dirac gradient C·e_j on a quiet coordinate j,   sum over steps of the released
//	           sampled into steps like an example              update at j (GradientCanaries)
//	black-box  a training example with a random wrong label    final model's log-odds of that
//	                                                           label (InputCanaries)
//	federated  a client whose update is a multiple of e_j,     sum over rounds of the global
//	           clipped to S by its own client                  model's standardised move at j
//
// Quiet coordinates (QuietCoordinates) are where the data's gradient is zero, so a
// white-box canary competes with the mechanism's noise alone: the setting in which the
// accountant's bound is tight (Nasr et al. 2021). RunCentral audits package train's
// training (DP-SGD or none); RunFederated a simulated federation's user-level DP (package
// sim, with canary clients, sim.Options.Canaries). WritePlot draws the bound against the
// number of guesses.
//
// Invariants: the audit's own randomness (inclusion, canary choice and sampling) is seeded
// and independent of the mechanism's noise, which the caller supplies (secure in
// production); the audited training is the real one, with the canaries added where an
// example's clipped gradient (or a client's clipped update) would be.
package audit
