package secagg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Hierarchical aggregation (doc.go): an intermediate aggregator's Subtotal sums the uploads
// of its subtree and forwards one PartialSum; the server's HierarchicalAggregator adds
// partial sums beside direct uploads, lists every contributor's signed commitment in the
// decryption request, and merges the aggregators' Openings into the one a member checks.

// PartialSum is what an intermediate aggregator forwards for one round and purpose: the sum
// of its subtree's uploads and the signed commitment of every upload in it.
type PartialSum struct {
	// Sum holds the summed ciphertexts as an unsigned EncryptedUpdate: the aggregate's
	// session, round, purpose and dimension, ClientID the aggregator's name, no task id,
	// certificate, commitment or signature. It marshals as an EncryptedUpdate does.
	Sum *EncryptedUpdate
	// Commitments are the summed uploads' signed commitments, in the aggregator's order
	// (the order of its Openings).
	Commitments []UploadCommitment
}

// MarshalBinary encodes the partial sum: its Sum as EncryptedUpdate encodes it, then the
// commitments as a DecryptionRequest lists them.
func (p *PartialSum) MarshalBinary() ([]byte, error) {
	if p.Sum == nil {
		return nil, errors.New("secagg: partial sum holds no sum")
	}
	sum, err := p.Sum.MarshalBinary()
	if err != nil {
		return nil, err
	}
	cs, err := commitmentsSize(p.Commitments)
	if err != nil {
		return nil, err
	}
	w := newWriter(4+len(sum)+cs, typePartial)
	w.u32(uint32(len(sum)))
	w.raw(sum)
	w.commitments(p.Commitments)
	return w.b, nil
}

// UnmarshalBinary decodes a partial sum (its Sum checked as an upload is, by
// EncryptedUpdate.UnmarshalBinary); it never panics on malformed input.
func (p *PartialSum) UnmarshalBinary(b []byte) error {
	r := newReader(b, typePartial, "partial sum")
	n := int(r.u32())
	raw := r.take(n)
	var out PartialSum
	if r.err == nil {
		out.Sum = &EncryptedUpdate{}
		if err := out.Sum.UnmarshalBinary(raw); err != nil {
			return fmt.Errorf("secagg: partial sum: %w", err)
		}
	}
	out.Commitments = r.commitments()
	if err := r.done(); err != nil {
		return err
	}
	*p = out
	return nil
}

// c1 returns the c1 polynomials of the partial sum.
func (p *PartialSum) c1() []ring.Poly {
	c1 := make([]ring.Poly, len(p.Sum.chunks))
	for k, ct := range p.Sum.chunks {
		c1[k] = ct.Value[1]
	}
	return c1
}

// Subtotal is an intermediate aggregator's side of one round and purpose: it validates and
// adds its subtree's uploads exactly as the server's Aggregator does (certificate,
// signature, commitment, every ciphertext), forwards their sum once (Partial), and opens
// its uploads' leaves for the members' spot checks that the server relays (Open). It keeps
// each upload's c1, 8 bytes per value, until the round ends; nothing outlives the round.
type Subtotal struct {
	agg  *Aggregator
	name string
	sent *PartialSum
	id   AggregateID
}

// NewSubtotal starts the subtotal of the aggregator name (its identity at the server).
// Hierarchical aggregation needs identities: cfg.Verifier is required, as members must see
// every contributor's signed commitment.
func NewSubtotal(params Parameters, cfg AggregatorConfig, name string) (*Subtotal, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("secagg: a subtotal needs a Verifier: hierarchical aggregation forwards each contributor's signed commitment, which the passive model has not")
	}
	if name == "" || len(name) > maxClientIDLength {
		return nil, fmt.Errorf("secagg: aggregator name of %d bytes: must be 1…%d", len(name), maxClientIDLength)
	}
	agg, err := NewAggregator(params, cfg)
	if err != nil {
		return nil, err
	}
	return &Subtotal{agg: agg, name: name}, nil
}

// Add validates an upload and adds it, as Aggregator.Add; after Partial it refuses with
// ErrFrozen.
func (s *Subtotal) Add(u *EncryptedUpdate) error {
	if err := s.frozen(); err != nil {
		return err
	}
	return s.agg.Add(u)
}

// frozen refuses what comes after Partial.
func (s *Subtotal) frozen() error {
	if s.sent != nil {
		return fmt.Errorf("secagg: the subtotal of %s for round %d was forwarded already: %w", s.name, s.agg.cfg.Round, ErrFrozen)
	}
	return nil
}

// CheckedUpload is an upload that passed a Subtotal's checks (Check) and is not added
// yet: an aggregator checks an upload, forwards its client's result to the server as held,
// and adds it only once the server has accepted that result, so that a partial sum never
// holds an upload the server refused (it cannot be taken out again).
type CheckedUpload struct{ checkedUpload }

// ClientID returns the certified identity of the upload's client.
func (c *CheckedUpload) ClientID() string { return c.accepted.identity }

// TaskID returns the task the upload was signed for.
func (c *CheckedUpload) TaskID() string { return c.accepted.commitment.TaskID }

// Root returns the upload's signed commitment root.
func (c *CheckedUpload) Root() [32]byte { return c.accepted.commitment.Root }

// Check validates an upload as Add does (certificate, signature, commitment, every
// ciphertext) without adding it.
func (s *Subtotal) Check(u *EncryptedUpdate) (*CheckedUpload, error) {
	if err := s.frozen(); err != nil {
		return nil, err
	}
	acc, err := s.agg.check(u)
	if err != nil {
		return nil, err
	}
	return &CheckedUpload{checkedUpload{clientID: u.ClientID, chunks: len(u.chunks), chunk: chunkOf(u.chunks), accepted: acc}}, nil
}

// CheckBinary is Check of a marshalled upload, read chunk by chunk from p as
// Aggregator.AddBinary reads it (accept as there): the checked upload keeps p, not the
// decoded ciphertexts, and AddChecked adds each chunk's coefficients from it, so p must
// not change until then.
func (s *Subtotal) CheckBinary(p []byte, accept func(clientID, taskID string) error) (*CheckedUpload, error) {
	if err := s.frozen(); err != nil {
		return nil, err
	}
	c, err := s.agg.checkBinary(p, accept)
	if err != nil {
		return nil, err
	}
	return &CheckedUpload{*c}, nil
}

// AddChecked adds an upload that Check accepted. What may have changed since is checked
// again: the subtotal forwarded, a second upload of the client, MaxContributors reached.
func (s *Subtotal) AddChecked(c *CheckedUpload) error {
	if err := s.frozen(); err != nil {
		return err
	}
	a := s.agg
	switch {
	case a.broken != nil:
		return a.broken
	case len(a.clients) >= a.params.lit.MaxContributors:
		return fmt.Errorf("secagg: aggregate already holds MaxContributors = %d updates; another could overflow the modulus", a.params.lit.MaxContributors)
	}
	if _, dup := a.clients[c.clientID]; dup {
		return fmt.Errorf("secagg: client %q already contributed to round %d: %w", c.clientID, a.cfg.Round, ErrDuplicate)
	}
	return a.add(&c.checkedUpload)
}

// Count returns the number of uploads added.
func (s *Subtotal) Count() int { return s.agg.Count() }

// Contributors returns the client ids whose uploads were added, sorted.
func (s *Subtotal) Contributors() []string { return s.agg.Contributors() }

// Partial freezes the subtotal and returns the partial sum to forward; calling it again
// returns the same one (a forward retried after a network failure sends the same bytes).
func (s *Subtotal) Partial() (*PartialSum, error) {
	if s.sent != nil {
		return s.sent, nil
	}
	a := s.agg
	if a.broken != nil {
		return nil, a.broken
	}
	if len(a.uploads) == 0 {
		return nil, fmt.Errorf("secagg: the subtotal of %s for round %d holds no upload: there is nothing to forward", s.name, a.cfg.Round)
	}
	chunks := make([]*rlwe.Ciphertext, len(a.sum))
	for k, ct := range a.sum {
		chunks[k] = ct.CopyNew()
	}
	p := &PartialSum{
		Sum: &EncryptedUpdate{Session: a.cfg.Session, Round: a.cfg.Round, Purpose: a.cfg.Purpose, ClientID: s.name, Dim: a.cfg.Dim, q: a.params.Moduli(), chunks: chunks},
	}
	for _, u := range a.uploads {
		p.Commitments = append(p.Commitments, u.commitment)
	}
	s.sent, s.id = p, aggregateID(a.cfg.Session, a.cfg.Dim, a.params, p.c1())
	return p, nil
}

// Open answers a member's challenge that the server relays: for every upload of the
// forwarded partial sum (in its order), the challenged leaves' coefficients and Merkle
// paths. The Opening carries the partial sum's AggregateID in place of the aggregate's
// (the server checks it against the partial, then merges it into its own Opening).
func (s *Subtotal) Open(ch *Challenge) (*Opening, error) {
	a := s.agg
	if s.sent == nil {
		return nil, fmt.Errorf("secagg: the subtotal of %s for round %d was not forwarded: there is nothing to open (call Partial first)", s.name, a.cfg.Round)
	}
	if ch.Session != a.cfg.Session || ch.Round != a.cfg.Round || ch.Purpose != a.cfg.Purpose {
		return nil, fmt.Errorf("secagg: challenge for session %s round %d %s, this subtotal is session %s round %d %s: %w", ch.Session, ch.Round, ch.Purpose, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, ErrWrongSession)
	}
	chunks := len(a.sum) * a.params.Levels()
	width, leaves, depth := leafLayout(a.params.N(), chunks)
	if err := checkLeaves(ch.Leaves, leaves); err != nil {
		return nil, err
	}
	o := &Opening{Session: a.cfg.Session, Round: a.cfg.Round, Purpose: a.cfg.Purpose, Aggregate: s.id, To: ch.From, Leaves: slices.Clone(ch.Leaves), chunks: chunks, width: width, depth: depth, uploads: make([]uploadOpening, len(a.uploads))}
	for i, u := range a.uploads {
		var err error
		if o.uploads[i], err = openUpload(u.tree, ch.Leaves, chunks, width, depth); err != nil {
			return nil, fmt.Errorf("secagg: opening the update of %s from the subtotal's store: %w", u.identity, err)
		}
	}
	return o, nil
}

// KeptBytes returns what the subtotal keeps to answer spot checks.
func (s *Subtotal) KeptBytes() int { return s.agg.KeptBytes() }

// checkLeaves checks a challenge's leaves: 1…MaxSpotChecks, ascending, below leaves.
func checkLeaves(ls []uint32, leaves int) error {
	if len(ls) == 0 || len(ls) > MaxSpotChecks {
		return fmt.Errorf("secagg: challenge of %d leaves: must be 1…%d", len(ls), MaxSpotChecks)
	}
	for i, l := range ls {
		if int(l) >= leaves || (i > 0 && l <= ls[i-1]) {
			return fmt.Errorf("secagg: challenge leaves %v: must be ascending and below %d", ls, leaves)
		}
	}
	return nil
}

// openUpload opens the leaves of one kept upload tree.
func openUpload(t *uploadTree, leaves []uint32, chunks, width, depth int) (uploadOpening, error) {
	u := uploadOpening{c0: t.c0, coeffs: make([]uint64, 0, len(leaves)*chunks*width), path: make([][32]byte, 0, len(leaves)*depth)}
	for _, l := range leaves {
		var err error
		if u.coeffs, u.path, err = t.open(u.coeffs, u.path, int(l)); err != nil {
			return uploadOpening{}, err
		}
	}
	return u, nil
}

// PartialSourceError names the intermediate aggregator whose Opening failed the server's
// check of its partial sum: it lied about its sum or its uploads' leaves (wraps
// ErrSpotCheck), or sent none; the runtime drops that aggregator.
type PartialSourceError struct {
	Source string
	Err    error
}

func (e *PartialSourceError) Error() string {
	return fmt.Sprintf("secagg: aggregator %s: %v", e.Source, e.Err)
}

func (e *PartialSourceError) Unwrap() error { return e.Err }

// HierarchicalAggregator is the server's aggregate of one round and purpose when some
// uploads arrive through intermediate aggregators: an Aggregator for the direct uploads, to
// whose running sums partial sums are added. Its DecryptionRequest lists every
// contributor's signed commitment, and Open merges the aggregators' Openings with its own.
// Like Aggregator it is a single-threaded state machine with no I/O; it needs a Verifier.
type HierarchicalAggregator struct {
	agg     *Aggregator
	sources []*partialSource
	// refs says, after DecryptionRequest, where the opening of each listed upload comes
	// from, in the request's order.
	refs []uploadRef
}

// partialSource is one aggregator's partial sum as the server holds it.
type partialSource struct {
	name       string
	sum        *PartialSum
	id         AggregateID
	identities []string
	dropped    bool
}

// uploadRef locates a listed upload's opening: source −1 is the direct uploads' Opening.
type uploadRef struct{ source, index int }

// NewHierarchicalAggregator starts an empty aggregate; cfg.Verifier is required.
func NewHierarchicalAggregator(params Parameters, cfg AggregatorConfig) (*HierarchicalAggregator, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("secagg: hierarchical aggregation needs a Verifier: members must see the signed commitment of every contributor")
	}
	agg, err := NewAggregator(params, cfg)
	if err != nil {
		return nil, err
	}
	return &HierarchicalAggregator{agg: agg}, nil
}

// HierarchicalOf turns an aggregate of direct uploads (with a Verifier, not yet frozen)
// into a hierarchical one, so that partial sums can be added beside the uploads it holds:
// the server does so when the first held upload of a round arrives. a must not be used on
// its own afterwards.
func HierarchicalOf(a *Aggregator) (*HierarchicalAggregator, error) {
	switch {
	case a.cfg.Verifier == nil:
		return nil, errors.New("secagg: hierarchical aggregation needs a Verifier: members must see the signed commitment of every contributor")
	case a.request != nil:
		return nil, fmt.Errorf("secagg: round %d: %w", a.cfg.Round, ErrFrozen)
	}
	return &HierarchicalAggregator{agg: a}, nil
}

// SourceUpload is an upload listed in a partial sum: its client's certified identity, the
// task and task digest it was signed for, and its commitment root.
type SourceUpload struct {
	ClientID   string
	TaskID     string
	TaskDigest [32]byte
	Root       [32]byte
}

// SourceUploads returns the uploads listed in the partial sum of source (AddPartial), in
// its order; nil if it holds none or it was dropped.
func (h *HierarchicalAggregator) SourceUploads(source string) []SourceUpload {
	for _, s := range h.sources {
		if s.name != source || s.dropped {
			continue
		}
		out := make([]SourceUpload, len(s.identities))
		for i, id := range s.identities {
			c := s.sum.Commitments[i]
			out[i] = SourceUpload{ClientID: id, TaskID: c.TaskID, TaskDigest: c.TaskDigest, Root: c.Root}
		}
		return out
	}
	return nil
}

// Add validates and adds a direct upload (Aggregator.Add).
func (h *HierarchicalAggregator) Add(u *EncryptedUpdate) error { return h.agg.Add(u) }

// Count returns the number of contributors: direct uploads and those of partial sums.
func (h *HierarchicalAggregator) Count() int { return h.agg.Count() }

// Contributors returns every contributor's client id, sorted.
func (h *HierarchicalAggregator) Contributors() []string { return h.agg.Contributors() }

// Sources returns the aggregators whose partial sums the aggregate holds, in the order
// they were added: each must open its uploads for every member's challenge.
func (h *HierarchicalAggregator) Sources() []string {
	var names []string
	for _, s := range h.sources {
		if !s.dropped {
			names = append(names, s.name)
		}
	}
	return names
}

// AddPartial validates the partial sum of the aggregator source and adds it: session,
// round, purpose, dimension, modulus and every ciphertext as for an upload; every listed
// commitment signed for this aggregate by a certificate of the CA; every identity new to
// the aggregate; at most MaxContributors in all; one partial sum per source. A refused
// partial sum leaves the aggregate unchanged. The server cannot check that the sum is the
// sum of the listed uploads: Open checks it at the members' leaves, and so do members.
func (h *HierarchicalAggregator) AddPartial(p *PartialSum, source string) error {
	a := h.agg
	switch {
	case a.broken != nil:
		return a.broken
	case a.request != nil:
		return fmt.Errorf("secagg: partial sum of %s for round %d: %w", source, a.cfg.Round, ErrFrozen)
	case p == nil || p.Sum == nil:
		return fmt.Errorf("secagg: partial sum of %s holds no sum", source)
	case p.Sum.ClientID != source:
		return fmt.Errorf("secagg: partial sum names aggregator %q but came from %q: %w", p.Sum.ClientID, source, ErrUnauthenticated)
	case len(p.Commitments) == 0:
		return fmt.Errorf("secagg: partial sum of %s lists no upload", source)
	}
	for _, s := range h.sources {
		if s.name == source {
			return fmt.Errorf("secagg: aggregator %s already forwarded its partial sum for round %d: %w", source, a.cfg.Round, ErrDuplicate)
		}
	}
	u := p.Sum
	if u.Session != a.cfg.Session || u.Round != a.cfg.Round || u.Purpose != a.cfg.Purpose {
		return fmt.Errorf("secagg: partial sum of %s is for session %s round %d %s, aggregating session %s round %d %s: %w", source, u.Session, u.Round, u.Purpose, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, ErrWrongSession)
	}
	if u.Dim != a.cfg.Dim {
		return fmt.Errorf("secagg: partial sum of %s has dimension %d, want %d", source, u.Dim, a.cfg.Dim)
	}
	if want := a.params.NumChunks(a.cfg.Dim); len(u.chunks) != want {
		return fmt.Errorf("secagg: partial sum of %s holds %d ciphertexts, want %d", source, len(u.chunks), want)
	}
	if !slices.Equal(u.q, a.params.Moduli()) {
		return fmt.Errorf("secagg: partial sum of %s is for modulus %v, want %v", source, u.q, a.params.Moduli())
	}
	for k, ct := range u.chunks {
		if err := a.checkMetadata(ct); err != nil {
			return fmt.Errorf("secagg: partial sum of %s: ciphertext %d: %v", source, k, err)
		}
	}
	if n := len(a.clients) + len(p.Commitments); n > a.params.lit.MaxContributors {
		return fmt.Errorf("secagg: partial sum of %s would bring the aggregate to %d updates, above MaxContributors = %d", source, n, a.params.lit.MaxContributors)
	}
	ids := make([]string, len(p.Commitments))
	seen := make(map[string]struct{}, len(p.Commitments))
	for i := range p.Commitments {
		c := &p.Commitments[i]
		id, err := c.verify(a.cfg.Verifier, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, a.cfg.Dim)
		if err != nil {
			return fmt.Errorf("secagg: partial sum of %s: upload %d is not signed for session %s, round %d, %s: %w", source, i, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, err)
		}
		if _, dup := a.clients[id]; dup {
			return fmt.Errorf("secagg: partial sum of %s lists client %q, who already contributed to round %d: %w", source, id, a.cfg.Round, ErrDuplicate)
		}
		if _, dup := seen[id]; dup {
			return fmt.Errorf("secagg: partial sum of %s lists client %q twice: %w", source, id, ErrDuplicate)
		}
		seen[id], ids[i] = struct{}{}, id
	}
	if err := a.accumulate(len(u.chunks), chunkOf(u.chunks), false, "adding the partial sum of "+source); err != nil {
		return err
	}
	kept := &PartialSum{Sum: &EncryptedUpdate{Session: u.Session, Round: u.Round, Purpose: u.Purpose, ClientID: u.ClientID, Dim: u.Dim, q: slices.Clone(u.q), chunks: make([]*rlwe.Ciphertext, len(u.chunks))}}
	for k, ct := range u.chunks {
		kept.Sum.chunks[k] = ct.CopyNew()
	}
	for _, c := range p.Commitments {
		kept.Commitments = append(kept.Commitments, UploadCommitment{Certificate: slices.Clone(c.Certificate), TaskID: c.TaskID, TaskDigest: c.TaskDigest, Root: c.Root, Signature: slices.Clone(c.Signature)})
	}
	for _, id := range ids {
		a.clients[id] = struct{}{}
	}
	h.sources = append(h.sources, &partialSource{name: source, sum: kept, id: aggregateID(a.cfg.Session, a.cfg.Dim, a.params, kept.c1()), identities: ids})
	return nil
}

// Drop subtracts the partial sum of source from the aggregate and forgets its
// contributors: what the server does, before it freezes the aggregate, with an aggregator
// that no longer answers (it could not open its uploads for the members). Only that
// subtree leaves the round.
func (h *HierarchicalAggregator) Drop(source string) error {
	a := h.agg
	if a.request != nil {
		return fmt.Errorf("secagg: dropping %s from round %d: %w (members have bound themselves to the aggregate)", source, a.cfg.Round, ErrFrozen)
	}
	if a.broken != nil {
		return a.broken
	}
	for _, s := range h.sources {
		if s.name != source || s.dropped {
			continue
		}
		if err := a.accumulate(len(s.sum.Sum.chunks), chunkOf(s.sum.Sum.chunks), true, "subtracting the partial sum of "+source); err != nil {
			return err
		}
		for _, id := range s.identities {
			delete(a.clients, id)
		}
		s.dropped = true
		return nil
	}
	return fmt.Errorf("secagg: round %d holds no partial sum of %s", a.cfg.Round, source)
}

// DecryptionRequest freezes the aggregate and returns the request for the member set, as
// Aggregator.DecryptionRequest, listing the signed commitments of every contributor —
// direct uploads and those of every partial sum — sorted by certificate.
func (h *HierarchicalAggregator) DecryptionRequest(members []MemberID) (*DecryptionRequest, error) {
	req, err := h.agg.DecryptionRequest(members)
	if err != nil {
		return nil, err
	}
	type listed struct {
		c   UploadCommitment
		ref uploadRef
	}
	all := make([]listed, 0, req.Count)
	for i, c := range req.Commitments {
		all = append(all, listed{c, uploadRef{-1, i}})
	}
	for si, s := range h.sources {
		if s.dropped {
			continue
		}
		for i, c := range s.sum.Commitments {
			all = append(all, listed{c, uploadRef{si, i}})
		}
	}
	slices.SortStableFunc(all, func(x, y listed) int { return bytes.Compare(x.c.Certificate, y.c.Certificate) })
	req.Commitments, h.refs = make([]UploadCommitment, len(all)), make([]uploadRef, len(all))
	for i, l := range all {
		req.Commitments[i], h.refs[i] = l.c, l.ref
	}
	return req, nil
}

// Open answers a member's challenge on the pending request with the openings of the
// direct uploads and those of every source (Sources) for the same challenge, which the
// runtime relayed to them. Each source's Opening is checked against its partial sum first
// (the member's own spot check, on that subtree): a source that sent none, or one whose
// uploads do not open to their signed roots or do not sum to its partial sum at the
// leaves, fails with a *PartialSourceError naming it.
func (h *HierarchicalAggregator) Open(ch *Challenge, sources map[string]*Opening) (*Opening, error) {
	a := h.agg
	direct, err := a.Open(ch)
	if err != nil {
		return nil, err
	}
	req := a.request
	if len(h.refs) != len(req.Commitments) {
		return nil, fmt.Errorf("secagg: round %d: the pending request was not made by this aggregate's DecryptionRequest", a.cfg.Round)
	}
	opened := make([]*Opening, len(h.sources))
	for si, s := range h.sources {
		if s.dropped {
			continue
		}
		o := sources[s.name]
		if o == nil {
			return nil, &PartialSourceError{Source: s.name, Err: fmt.Errorf("no opening of its %d uploads for member %d's challenge", len(s.sum.Commitments), ch.From)}
		}
		sub := &DecryptionRequest{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: s.id, Dim: req.Dim, Count: len(s.sum.Commitments), Commitments: s.sum.Commitments, q: s.sum.Sum.q, c1: s.sum.c1()}
		if err := verifyOpening(a.params, sub, ch.From, ch.Leaves, o); err != nil {
			return nil, &PartialSourceError{Source: s.name, Err: err}
		}
		opened[si] = o
	}
	merged := *direct
	merged.uploads = make([]uploadOpening, len(h.refs))
	for i, r := range h.refs {
		if r.source < 0 {
			merged.uploads[i] = direct.uploads[r.index]
		} else {
			merged.uploads[i] = opened[r.source].uploads[r.index]
		}
	}
	return &merged, nil
}

// Combine checks the members' shares and decodes the aggregate (Aggregator.Combine).
func (h *HierarchicalAggregator) Combine(shares []*DecryptionShare) (*AggregateResult, error) {
	return h.agg.Combine(shares)
}

// KeptBytes returns what the aggregate keeps to answer spot checks: the direct uploads'
// trees and each partial sum's ciphertexts.
func (h *HierarchicalAggregator) KeptBytes() int {
	b := h.agg.KeptBytes()
	for _, s := range h.sources {
		for _, ct := range s.sum.Sum.chunks {
			b += 8 * (len(ct.Value[0].Coeffs) + len(ct.Value[1].Coeffs)) * ct.Value[0].N()
		}
	}
	return b
}

// accumulate adds n chunks (validated ciphertexts of the aggregate's shape, chunk k as
// chunk(w, k) returns it on worker w) into the running sums, or subtracts them, in parallel
// over chunks. An error, unreachable for validated input, leaves the sums partly updated:
// the aggregate is then broken.
func (a *Aggregator) accumulate(n int, chunk func(w, k int) (*rlwe.Ciphertext, error), subtract bool, what string) error {
	if a.sum == nil {
		a.sum = make([]*rlwe.Ciphertext, n)
	}
	errs := make([]error, n)
	parallelFor(a.cfg.Workers, n, func(w, k int) {
		ct, err := chunk(w, k)
		if err != nil {
			errs[k] = err
			return
		}
		if a.sum[k] == nil {
			a.sum[k] = hefloat.NewCiphertext(a.params.he, 1, a.params.he.MaxLevel())
			*a.sum[k].MetaData = *ct.MetaData
		}
		if subtract {
			errs[k] = a.evals[w].Sub(a.sum[k], ct, a.sum[k])
		} else {
			errs[k] = a.evals[w].Add(a.sum[k], ct, a.sum[k])
		}
	})
	if err := firstError(errs); err != nil {
		a.broken = fmt.Errorf("secagg: round %d: %s failed half-way (%w); the aggregate is discarded", a.cfg.Round, what, err)
		return a.broken
	}
	return nil
}

// chunkOf returns chunk k of cts, for accumulate.
func chunkOf(cts []*rlwe.Ciphertext) func(w, k int) (*rlwe.Ciphertext, error) {
	return func(_, k int) (*rlwe.Ciphertext, error) { return cts[k], nil }
}
