package secagg

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/confide-fl/confide/secagg/identitytest"
)

// Benchmarks at the default parameters (LogN 14, one 60-bit prime) on d = 100,000 values
// (7 ciphertexts), K = 10, t = 6. `confide bench secagg` runs the same steps at d = 10^6 and
// compares the sum with plaintext float64 addition.

const benchDim = 100_000

var benchCommittee = CommitteeConfig{Size: 10, Threshold: 6, MinContributions: 2}

func benchFederation(b *testing.B, workers int) *federation {
	p, err := NewParameters(ParametersLiteral{})
	if err != nil {
		b.Fatal(err)
	}
	return newFederation(b, p, benchCommittee, workers)
}

func BenchmarkEncrypt(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("d=%d/workers=%d", benchDim, workers), func(b *testing.B) {
			f := benchFederation(b, 1)
			enc, err := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c", Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			u := randomUpdates(1, 1, benchDim, 1)[0]
			b.SetBytes(8 * benchDim)
			for b.Loop() {
				if _, err := enc.EncryptUpdate(1, u, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalUpdate(b *testing.B) {
	f := benchFederation(b, 1)
	enc, _ := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c"})
	u, err := enc.EncryptUpdate(1, randomUpdates(1, 1, benchDim, 1)[0], 1)
	if err != nil {
		b.Fatal(err)
	}
	blob, _ := u.MarshalBinary()
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		var v EncryptedUpdate
		if err := v.UnmarshalBinary(blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAggregate measures Aggregator.Add of one upload into the running sums.
func BenchmarkAggregate(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("d=%d/workers=%d", benchDim, workers), func(b *testing.B) {
			f := benchFederation(b, 1)
			enc, _ := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "c"})
			u, err := enc.EncryptUpdate(1, randomUpdates(1, 1, benchDim, 1)[0], 1)
			if err != nil {
				b.Fatal(err)
			}
			p := f.params
			p.lit.MaxContributors = 1 << 30 // b.N adds of one upload; the sum may wrap, the timing does not change
			agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: benchDim, Committee: benchCommittee, Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(8 * benchDim)
			i := 0
			for b.Loop() {
				v := *u
				v.ClientID = fmt.Sprint(i)
				i++
				if err := agg.Add(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlaintextSum is the reference for BenchmarkAggregate: adding one float64 vector.
func BenchmarkPlaintextSum(b *testing.B) {
	u := randomUpdates(1, 1, benchDim, 1)[0]
	acc := make([]float64, benchDim)
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		for j, x := range u {
			acc[j] += x
		}
	}
}

// BenchmarkDecryptionShare measures one member's shares for a d = 100,000 aggregate.
func BenchmarkDecryptionShare(b *testing.B) {
	f := benchFederation(b, 1)
	agg, _ := smallRound(b, f, 1, 2, benchDim)
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 3, 4, 5, 6})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		if _, err := f.members[0].DecryptionShare(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecrypt measures Combine: adding t = 6 shares and decoding a d = 100,000 sum.
func BenchmarkDecrypt(b *testing.B) {
	f := benchFederation(b, 1)
	agg, _ := smallRound(b, f, 1, 2, benchDim)
	req, err := agg.DecryptionRequest([]MemberID{5, 6, 7, 8, 9, 10})
	if err != nil {
		b.Fatal(err)
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.members[id-1].DecryptionShare(req)
		if err != nil {
			b.Fatal(err)
		}
		shares = append(shares, s)
	}
	b.SetBytes(8 * benchDim)
	for b.Loop() {
		if _, err := agg.Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeySetup measures the whole in-memory key setup of a K = 10, t = 6 committee.
func BenchmarkKeySetup(b *testing.B) {
	p, _ := NewParameters(ParametersLiteral{})
	for b.Loop() {
		newFederation(b, p, benchCommittee, 1)
	}
}

// Benchmarks of the active-server model at d = 10^6 (62 ciphertexts at LogN 14): what
// signing, committing, verifying and spot-checking add to the passive protocol. doc.go
// quotes them (`go test ./secagg -run - -bench 'Authenticated|Commit|SignUpload|SpotCheck'`).

const benchDimLarge = 1_000_000

// cpuMeter adds up the CPU time of the benchmark's own OS thread around the measured calls
// (the benchmark locks its goroutine to the thread and runs parties with one worker), and
// reports it as cpu-ns/op: unlike wall time it does not grow when other processes take the
// CPU. Background garbage collection on other threads is not counted.
type cpuMeter struct {
	total, start time.Duration
	ok           bool
}

func newCPUMeter() *cpuMeter {
	runtime.LockOSThread()
	_, ok := threadCPU()
	return &cpuMeter{ok: ok}
}

func (c *cpuMeter) begin() { c.start, _ = threadCPU() }

func (c *cpuMeter) end() {
	t, _ := threadCPU()
	c.total += t - c.start
}

func (c *cpuMeter) report(b *testing.B) {
	runtime.UnlockOSThread()
	if c.ok && b.N > 0 {
		b.ReportMetric(float64(c.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// benchUploads is the number of uploads an aggregate holds in the spot-check benchmarks
// (every cost there is linear in it).
const benchUploads = 32

func authBenchFederation(b *testing.B) *federation {
	p, err := NewParameters(ParametersLiteral{})
	if err != nil {
		b.Fatal(err)
	}
	return newAuthFederation(b, p, benchCommittee, 1)
}

// BenchmarkEncryptAuthenticated compares a client's Encrypt without and with a Signer
// (commitment and signature) on one goroutine. Every iteration runs both, alternately, so
// that a busy machine slows them alike; it reports each one's CPU time, the ratio and the
// upload sizes.
func BenchmarkEncryptAuthenticated(b *testing.B) {
	f := authBenchFederation(b)
	u := randomUpdates(1, 1, benchDimLarge, 1)[0]
	plain, err := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: "client-0"})
	if err != nil {
		b.Fatal(err)
	}
	signed, err := NewEncryptor(f.params, f.pk, EncryptorConfig{Signer: testSigner(b, f.ca, "client-0"), Verifier: f.verifier})
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("d=%d", benchDimLarge), func(b *testing.B) {
		cpuPlain, cpuSigned := newCPUMeter(), &cpuMeter{ok: true}
		var up, us *EncryptedUpdate
		for b.Loop() {
			var err error
			cpuPlain.begin()
			up, err = plain.Encrypt(UploadContext{Round: 1}, u, 1)
			cpuPlain.end()
			if err != nil {
				b.Fatal(err)
			}
			cpuSigned.begin()
			us, err = signed.Encrypt(UploadContext{Round: 1, Purpose: PurposeFit, TaskID: "task-1"}, u, 1)
			cpuSigned.end()
			if err != nil {
				b.Fatal(err)
			}
		}
		runtime.UnlockOSThread()
		if cpuPlain.ok && b.N > 0 {
			b.ReportMetric(float64(cpuPlain.total.Nanoseconds())/float64(b.N), "plain-cpu-ns/op")
			b.ReportMetric(float64(cpuSigned.total.Nanoseconds())/float64(b.N), "signed-cpu-ns/op")
			b.ReportMetric(float64(cpuSigned.total)/float64(cpuPlain.total), "time-ratio")
		}
		bp, _ := up.MarshalBinary()
		bs, _ := us.MarshalBinary()
		b.ReportMetric(float64(len(bp)), "plain-bytes")
		b.ReportMetric(float64(len(bs)), "signed-bytes")
	})
}

// BenchmarkCommitUpload measures the Merkle commitment of a d = 10^6 upload: as a client
// computes it (root only) and as the aggregator does (keeping what opens it).
func BenchmarkCommitUpload(b *testing.B) {
	f := authBenchFederation(b)
	u := f.upload(b, "client-0", 1, PurposeFit, randomUpdates(1, 1, benchDimLarge, 1)[0])
	for _, keep := range []bool{false, true} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("d=%d/keep=%v/workers=%d", benchDimLarge, keep, workers), func(b *testing.B) {
				b.SetBytes(8 * benchDimLarge)
				var t *uploadTree
				cpu := newCPUMeter()
				for b.Loop() {
					cpu.begin()
					t = commitUpload(f.params.N(), f.params.Moduli(), u.chunks, workers, keep, nil)
					cpu.end()
				}
				if workers == 1 {
					cpu.report(b)
				}
				if keep {
					b.ReportMetric(float64(t.memoryBytes()), "kept-bytes")
				}
			})
		}
	}
}

// BenchmarkSignUpload measures signing and verifying one upload's digest, with Ed25519 and
// ECDSA P-256 certificates (the verifier's certificate cache warm).
func BenchmarkSignUpload(b *testing.B) {
	f := authBenchFederation(b)
	d := uploadDigest(f.session, 1, PurposeFit, "task-1", [32]byte{2}, benchDimLarge, [32]byte{1})
	ed, _ := f.ca.Issue("ed25519")
	ec, _ := f.ca.IssueECDSA("ecdsa")
	for name, id := range map[string]identitytest.Identity{"ed25519": ed, "ecdsa-p256": ec} {
		s, err := NewSigner(id.Certificate, id.Key)
		if err != nil {
			b.Fatal(err)
		}
		sig, _ := s.sign(d)
		b.Run(name+"/sign", func(b *testing.B) {
			cpu := newCPUMeter()
			for b.Loop() {
				cpu.begin()
				_, err := s.sign(d)
				cpu.end()
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(len(sig)), "signature-bytes")
			b.ReportMetric(float64(len(id.Certificate)), "certificate-bytes")
		})
		b.Run(name+"/verify", func(b *testing.B) {
			cpu := newCPUMeter()
			for b.Loop() {
				cpu.begin()
				_, err := f.verifier.verify(id.Certificate, d, sig)
				cpu.end()
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkAggregateAuthenticated compares Aggregator.Add of a d = 10^6 upload without and
// with a Verifier (signature, commitment recomputed, c1 kept).
func BenchmarkAggregateAuthenticated(b *testing.B) {
	f := authBenchFederation(b)
	vec := randomUpdates(1, 1, benchDimLarge, 1)[0]
	const variants = 8
	var ups []*EncryptedUpdate
	for i := range variants {
		ups = append(ups, f.upload(b, fmt.Sprint("client-", i), 1, PurposeFit, vec))
	}
	for _, verified := range []bool{false, true} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("d=%d/verified=%v/workers=%d", benchDimLarge, verified, workers), func(b *testing.B) {
				cfg := AggregatorConfig{Session: f.session, Round: 1, Dim: benchDimLarge, Committee: benchCommittee, Workers: workers}
				if verified {
					cfg.Verifier, cfg.Purpose = f.verifier, PurposeFit
				}
				benchAdds(b, f.params, cfg, variants, func(agg *Aggregator, i int) error { return agg.Add(ups[i]) })
			})
		}
	}
}

// benchAdds times add(agg, i) for i = 0, 1, …, variants−1 over and over, into a new
// aggregate of cfg for every round of variants adds (made with the timer stopped), and
// reports its CPU time with one worker.
func benchAdds(b *testing.B, params Parameters, cfg AggregatorConfig, variants int, add func(agg *Aggregator, i int) error) {
	var agg *Aggregator
	i := 0
	b.SetBytes(8 * int64(cfg.Dim))
	cpu := newCPUMeter()
	for b.Loop() {
		if i%variants == 0 {
			b.StopTimer()
			var err error
			if agg, err = NewAggregator(params, cfg); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		cpu.begin()
		err := add(agg, i%variants)
		cpu.end()
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	if cfg.Workers <= 1 {
		cpu.report(b)
	}
}

// spotCheckBench is an aggregate of benchUploads signed uploads (one ciphertext under as
// many identities) of d = 10^6 values, its request to members 1…6, and member 1's challenge.
type spotCheckBench struct {
	f   *federation
	agg *Aggregator
	req *DecryptionRequest
	ch  *Challenge
}

func newSpotCheckBench(b *testing.B) *spotCheckBench {
	f := authBenchFederation(b)
	u := f.upload(b, "client-0", 1, PurposeFit, randomUpdates(1, 1, benchDimLarge, 1)[0])
	agg := f.newAggregator(b, 1, PurposeFit, benchDimLarge)
	for i := range benchUploads {
		s := testSigner(b, f.ca, fmt.Sprint("client-", i))
		v := *u
		v.ClientID, v.Certificate = s.Identity(), s.Certificate()
		var err error
		if v.Signature, err = s.sign(v.signedDigest()); err != nil {
			b.Fatal(err)
		}
		if err := agg.Add(&v); err != nil {
			b.Fatal(err)
		}
	}
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 3, 4, 5, 6})
	if err != nil {
		b.Fatal(err)
	}
	ch, err := f.members[0].Challenge(req)
	if err != nil {
		b.Fatal(err)
	}
	return &spotCheckBench{f: f, agg: agg, req: req, ch: ch}
}

// BenchmarkSpotCheck measures, for an aggregate of 32 uploads of d = 10^6 values and the
// default 8 leaves: a member's Challenge (the aggregate's id over c1 and 32 signature
// checks), the aggregator's Open, and the member's check of the opening. The request,
// challenge and opening sizes are reported too.
func BenchmarkSpotCheck(b *testing.B) {
	sc := newSpotCheckBench(b)
	m := sc.f.members[0]
	b.Run(fmt.Sprintf("challenge/d=%d/uploads=%d", benchDimLarge, benchUploads), func(b *testing.B) {
		cpu := newCPUMeter()
		for b.Loop() {
			m.rounds = map[Purpose]roundRecord{}
			cpu.begin()
			_, err := m.Challenge(sc.req)
			cpu.end()
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
		rb, _ := sc.req.MarshalBinary()
		b.ReportMetric(float64(len(rb)), "request-bytes")
		b.ReportMetric(float64(commitmentsBytes(sc.req)), "commitment-list-bytes")
	})
	var o *Opening
	b.Run(fmt.Sprintf("open/d=%d/uploads=%d", benchDimLarge, benchUploads), func(b *testing.B) {
		cpu := newCPUMeter()
		for b.Loop() {
			var err error
			cpu.begin()
			o, err = sc.agg.Open(sc.ch)
			cpu.end()
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
		ob, _ := o.MarshalBinary()
		b.ReportMetric(float64(len(ob)), "opening-bytes")
		b.ReportMetric(float64(sc.agg.KeptBytes())/benchUploads, "kept-bytes/upload")
	})
	b.Run(fmt.Sprintf("verify-opening/d=%d/uploads=%d", benchDimLarge, benchUploads), func(b *testing.B) {
		cpu := newCPUMeter()
		for b.Loop() {
			cpu.begin()
			err := verifyOpening(sc.f.params, sc.req, 1, sc.ch.Leaves, o)
			cpu.end()
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
}

// commitmentsBytes is what a request's commitment list adds to it.
func commitmentsBytes(req *DecryptionRequest) int {
	n := 0
	for _, c := range req.Commitments {
		n += commitmentWireSize(len(c.Certificate), len(c.TaskID), len(c.Signature))
	}
	return n
}

// BenchmarkEncryptBinary compares a client's whole-update path (Encrypt, then
// MarshalBinary) with the streamed one (EncryptBinary, the same bytes) on a signed upload of
// d = 10^6: time and the bytes each allocates (B/op: about twice the upload against once).
func BenchmarkEncryptBinary(b *testing.B) {
	f := authBenchFederation(b)
	u := randomUpdates(1, 1, benchDimLarge, 1)[0]
	ctx := UploadContext{Round: 1, Purpose: PurposeFit, TaskID: "task-1"}
	for _, streamed := range []bool{false, true} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("d=%d/streamed=%v/workers=%d", benchDimLarge, streamed, workers), func(b *testing.B) {
				enc, err := NewEncryptor(f.params, f.pk, EncryptorConfig{Signer: testSigner(b, f.ca, "client-0"), Verifier: f.verifier, Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(8 * benchDimLarge)
				b.ReportAllocs()
				for b.Loop() {
					if streamed {
						_, err = enc.EncryptBinary(ctx, u, 1)
					} else {
						var eu *EncryptedUpdate
						if eu, err = enc.Encrypt(ctx, u, 1); err == nil {
							_, err = eu.MarshalBinary()
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkAddBinary compares the server's whole-update path (UnmarshalBinary, then Add)
// with the streamed one (AddBinary from the upload's bytes) on signed uploads of d = 10^6,
// in the float encoding and in the packed one `confide bench secagg` picks by default
// (b = 11, 7 primes), into an aggregate without and with a Verifier: time, CPU time and
// the bytes each allocates per upload (B/op; with a Verifier both include the c1 copy the
// aggregate keeps, 8 bytes per value). plaintext is the reference: adding a float64
// vector of d values, and with verified=true also hashing its 8d bytes (SHA-256), as a
// plaintext server checking a signature over its upload would.
func BenchmarkAddBinary(b *testing.B) {
	packed, err := ChoosePacking(ParametersLiteral{MaxContributors: 1000}, 1e-4, benchDimLarge)
	if err != nil {
		b.Fatal(err)
	}
	float, err := NewParameters(ParametersLiteral{})
	if err != nil {
		b.Fatal(err)
	}
	vec := randomUpdates(1, 1, benchDimLarge, 1)[0]
	for _, verified := range []bool{false, true} {
		b.Run(fmt.Sprintf("plaintext/d=%d/verified=%v", benchDimLarge, verified), func(b *testing.B) {
			acc := make([]float64, benchDimLarge)
			b.SetBytes(8 * benchDimLarge)
			cpu := newCPUMeter()
			for b.Loop() {
				cpu.begin()
				if verified {
					sha256.Sum256(coeffBytes(unsafe.Slice((*uint64)(unsafe.Pointer(&vec[0])), len(vec))))
				}
				for j, x := range vec {
					acc[j] += x
				}
				cpu.end()
			}
			cpu.report(b)
		})
	}
	for _, enc := range []struct {
		name   string
		params Parameters
	}{{"float", float}, {"packed", packed}} {
		f := newAuthFederation(b, enc.params, benchCommittee, 1)
		const variants = 8
		var blobs [][]byte
		for i := range variants {
			ub, err := f.upload(b, fmt.Sprint("client-", i), 1, PurposeFit, vec).MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			blobs = append(blobs, ub)
		}
		for _, verified := range []bool{false, true} {
			for _, streamed := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/d=%d/verified=%v/streamed=%v", enc.name, benchDimLarge, verified, streamed), func(b *testing.B) {
					cfg := AggregatorConfig{Session: f.session, Round: 1, Dim: benchDimLarge, Committee: benchCommittee}
					if verified {
						cfg.Verifier, cfg.Purpose = f.verifier, PurposeFit
					}
					b.ReportAllocs()
					benchAdds(b, f.params, cfg, variants, func(agg *Aggregator, i int) error {
						if streamed {
							return agg.AddBinary(blobs[i], nil)
						}
						var u EncryptedUpdate
						if err := u.UnmarshalBinary(blobs[i]); err != nil {
							return err
						}
						return agg.Add(&u)
					})
				})
			}
		}
	}
}
