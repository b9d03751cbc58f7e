// Package secaggbench measures secure aggregation end to end on one machine: key setup,
// client encryption, upload size, the server's homomorphic sum against a plaintext float64
// sum of the same vectors, threshold decryption, and the error of the decoded sum. It backs
// `confide bench secagg`; the numbers the docs quote come from it.
package secaggbench

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/confide-fl/confide/secagg"
)

// Config describes one measurement.
type Config struct {
	Dim       int // values per update (d)
	Clients   int // updates summed
	Committee int // K
	Threshold int // t
	Absent    int // members absent at decryption (≤ K−t)
	LogN      int // ring degree 2^LogN
	// LogScale and FloodingSigma override the parameter defaults when non-zero.
	LogScale      int
	FloodingSigma float64
	// Distinct is the number of distinct client vectors actually generated and encrypted;
	// the server sum cycles through their ciphertexts (as distinct client ids), so memory
	// stays at Distinct uploads however many clients are summed.
	Distinct int
	Workers  int    // goroutines for encryption, the homomorphic sum and decryption
	Seed     uint64 // seeds the client vectors
	// Repeat runs each sum this many times and keeps the fastest, which filters out
	// interference from other processes on the machine (default 1).
	Repeat int
	// Encoding is "packed" (or empty: secagg's packed integer encoding) or "float" (one
	// value per coefficient at scale 2^LogScale). For "packed", ValueBits and Primes
	// override what secagg.ChoosePacking picks from TargetError (the largest error of the
	// mean update it aims for; default 1e-4) and Clients as MaxContributors.
	Encoding    string
	TargetError float64
	ValueBits   int
	Primes      int
	// ErrorClients is the number of independent client vectors whose encrypted sum the
	// error is measured on, each generated, encrypted and added in turn (memory of one
	// upload). 0 measures it on the timed sum, which cycles through Distinct vectors: the
	// packed encoding's rounding errors then repeat Clients/Distinct times, which no real
	// federation does.
	ErrorClients int
}

// Report is the result, in seconds and bytes.
type Report struct {
	Dim         int     `json:"dim"`
	Clients     int     `json:"clients"`
	Committee   int     `json:"committee"`
	Threshold   int     `json:"threshold"`
	Absent      int     `json:"absent_at_decryption"`
	LogN        int     `json:"log_n"`
	LogQ        int     `json:"log_q"`
	LogScale    int     `json:"log_scale"`
	Flooding    float64 `json:"flooding_sigma"`
	Chunks      int     `json:"ciphertexts_per_update"`
	Encoding    string  `json:"encoding"`                    // "float" or "packed"
	Primes      int     `json:"primes"`                      // primes of the ciphertext modulus
	ValueBits   int     `json:"bits_per_value,omitempty"`    // packed: quantised bits of a value
	PerCoeff    int     `json:"values_per_coefficient"`      // values one coefficient carries
	BytesPerVal float64 `json:"bytes_per_value"`             // upload bytes / d
	WireBitsPV  float64 `json:"upload_bits_per_value"`       // 8 × bytes_per_value
	QuantStep   float64 `json:"quantisation_step,omitempty"` // packed: grid of the values
	Workers     int     `json:"workers"`
	Distinct    int     `json:"distinct_client_vectors"`
	Repeat      int     `json:"repeat"`
	LoadAverage string  `json:"load_average,omitempty"` // /proc/loadavg at the start, where available
	GOMAXPROCS  int     `json:"gomaxprocs"`
	KeySetupSec float64 `json:"key_setup_seconds"`

	ClientEncryptSec        float64 `json:"client_encrypt_seconds"`                            // one update, Workers goroutines, median
	ClientEncryptPerMSec    float64 `json:"client_encrypt_seconds_per_1e6"`                    // same, per 10^6 values
	ClientEncrypt1ThreadSec float64 `json:"client_encrypt_seconds_1thread"`                    // one update, 1 goroutine, median of 3
	ClientEncrypt1PerMSec   float64 `json:"client_encrypt_seconds_per_1e6_1thr"`               // same, per 10^6 values
	ClientEncryptCPUPerMSec float64 `json:"client_encrypt_cpu_seconds_per_1e6_1thr,omitempty"` // same in CPU time, median of 3
	UploadBytes             int     `json:"upload_bytes"`
	RawBytes                int     `json:"raw_float64_bytes"`
	UploadRatio             float64 `json:"upload_ratio"`
	ServerDecodeSec         float64 `json:"server_decode_seconds_per_upload"` // UnmarshalBinary (with its checks)

	// The server's sum: Aggregator.AddBinary of every client's marshalled upload, as the
	// server adds what it received (decoding and checking each chunk, then adding it), best
	// of Repeat. ServerSumDecodedSec is Aggregator.Add of the same uploads decoded
	// beforehand (UnmarshalBinary not timed: ServerDecodeSec per upload).
	ServerSumSec            float64 `json:"server_sum_seconds"`
	ServerSumDecodedSec     float64 `json:"server_sum_decoded_seconds"`
	PlaintextSumSec         float64 `json:"plaintext_sum_seconds"`           // float64 sum, 1 goroutine
	PlaintextSumParallelSec float64 `json:"plaintext_sum_seconds_parallel"`  // float64 sum, Workers goroutines
	SumRatio                float64 `json:"sum_ratio"`                       // ServerSum / PlaintextSum (1 goroutine)
	SumRatioParallel        float64 `json:"sum_ratio_vs_parallel_plaintext"` // ServerSum / PlaintextSumParallel
	SumRatioDecoded         float64 `json:"sum_ratio_decoded"`               // ServerSumDecoded / PlaintextSum
	// CPU time of the same two sums on one goroutine: unlike wall time it does not grow
	// when other processes take the CPU, so the ratio stays meaningful on a busy machine.
	ServerSumCPUSec    float64 `json:"server_sum_cpu_seconds_1thread,omitempty"`
	PlaintextSumCPUSec float64 `json:"plaintext_sum_cpu_seconds,omitempty"`
	SumRatioCPU        float64 `json:"sum_ratio_cpu_1thread,omitempty"`
	// A plaintext server that checks a signature over each upload before adding it:
	// SHA-256 of its 8d bytes and an Ed25519 verification of the digest, then the float64
	// sum, in CPU time on one goroutine, and the server sum's CPU time over it. The timed
	// server sum here is the passive aggregate's (the uploads are unsigned), which hashes
	// nothing, so this ratio flatters it; secagg's BenchmarkAddBinary compares the two
	// servers both verifying (verified=true), per upload.
	PlaintextVerifiedCPUSec float64 `json:"plaintext_verified_sum_cpu_seconds,omitempty"`
	SumRatioCPUVerified     float64 `json:"sum_ratio_cpu_vs_verified_plaintext,omitempty"`

	RequestBytes    int     `json:"decryption_request_bytes"`
	ShareBytes      int     `json:"decryption_share_bytes"`
	MemberShareSec  float64 `json:"member_share_seconds"` // slowest member of the set
	CombineSec      float64 `json:"combine_seconds"`      // add shares + decode
	DecryptSec      float64 `json:"decryption_seconds"`   // members in parallel + combine
	MaxAbsError     float64 `json:"max_abs_error"`        // of the decoded sum vs the plaintext float64 sum
	MaxAbsErrorMean float64 `json:"max_abs_error_mean"`   // of the decoded mean (sum ÷ clients)
	ErrorClients    int     `json:"error_clients"`        // independent clients of the error's sum
	ErrorPassSec    float64 `json:"error_pass_seconds,omitempty"`
	PredictedStd    float64 `json:"predicted_error_std"` // Parameters.ErrorStd(t)
	TotalWeightErr  float64 `json:"total_weight_abs_error"`
	DecryptedCount  int     `json:"decrypted_count"`
	MemoryNote      string  `json:"note"`
	HeapInUseMBPeak float64 `json:"heap_in_use_mb_after_sum"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Dim < 1:
		return fmt.Errorf("--params %d: need at least one value per update", c.Dim)
	case c.Clients < secagg.MinContributions:
		return fmt.Errorf("--clients %d: need at least %d (a committee never decrypts fewer updates)", c.Clients, secagg.MinContributions)
	case c.Absent < 0 || c.Absent > c.Committee-c.Threshold:
		return fmt.Errorf("--absent %d: must be 0…committee−threshold = %d", c.Absent, c.Committee-c.Threshold)
	case c.Distinct < 1:
		return fmt.Errorf("--distinct %d: must be at least 1", c.Distinct)
	case c.Workers < 1:
		return fmt.Errorf("--workers %d: must be at least 1", c.Workers)
	case c.Repeat < 0:
		return fmt.Errorf("--repeat %d: must be at least 1", c.Repeat)
	case c.Encoding != "" && c.Encoding != "float" && c.Encoding != "packed":
		return fmt.Errorf("--encoding %q: use packed or float", c.Encoding)
	case c.Encoding == "float" && (c.ValueBits != 0 || c.Primes != 0):
		return fmt.Errorf("--value-bits and --primes are the packed encoding's; drop them or --encoding float")
	case c.ErrorClients < 0:
		return fmt.Errorf("--error-clients %d: must be 0 (measure on the timed sum) or more", c.ErrorClients)
	case c.ErrorClients > 0 && c.ErrorClients < secagg.MinContributions:
		return fmt.Errorf("--error-clients %d: need at least %d (a committee never decrypts fewer updates)", c.ErrorClients, secagg.MinContributions)
	}
	if c.Encoding == "" {
		c.Encoding = "packed"
	}
	if c.TargetError == 0 {
		c.TargetError = 1e-4
	}
	if c.Repeat == 0 {
		c.Repeat = 1
	}
	if c.Distinct > c.Clients {
		c.Distinct = c.Clients
	}
	return nil
}

// Run performs the measurement. Progress goes to slog at info level.
func Run(c Config) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	params, err := benchParameters(c)
	if err != nil {
		return nil, err
	}
	committee := secagg.CommitteeConfig{Size: c.Committee, Threshold: c.Threshold, MinContributions: secagg.MinContributions}
	if err := committee.Validate(params); err != nil {
		return nil, err
	}
	lit := params.Literal()
	r := &Report{
		Dim: c.Dim, Clients: c.Clients, Committee: c.Committee, Threshold: c.Threshold, Absent: c.Absent,
		LogN: lit.LogN, LogQ: lit.LogQ, LogScale: lit.LogScale, Flooding: lit.FloodingSigma,
		Chunks: params.NumChunks(c.Dim), Workers: c.Workers, Distinct: c.Distinct, Repeat: c.Repeat, GOMAXPROCS: runtime.GOMAXPROCS(0),
		RawBytes: 8 * c.Dim, PredictedStd: params.SumErrorStd(c.Threshold, c.Clients),
		Encoding: c.Encoding, Primes: params.Levels(), ValueBits: lit.ValueBits, PerCoeff: params.ValuesPerCoefficient(),
		QuantStep: params.QuantisationStep(),
	}
	r.MemoryNote = fmt.Sprintf("%d distinct client vectors are generated and encrypted; the server sum adds %d uploads cycling through their ciphertexts under distinct client ids, and the plaintext sum cycles through the same vectors in the same order; sums are the best of %d runs, client encryption the median of %d", c.Distinct, c.Clients, c.Repeat, c.Distinct)

	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.LoadAverage = strings.TrimSpace(string(b))
	}
	slog.Info("key setup", "committee", c.Committee, "threshold", c.Threshold)
	start := time.Now()
	session := secagg.NewSessionID()
	members, pk, err := keySetup(params, session, committee, c.Workers)
	if err != nil {
		return nil, err
	}
	r.KeySetupSec = time.Since(start).Seconds()

	rng := rand.New(rand.NewPCG(c.Seed, 0x5eca66))
	vecs := make([][]float64, c.Distinct)
	for i := range vecs {
		vecs[i] = make([]float64, c.Dim)
		for j := range vecs[i] {
			vecs[i][j] = 2*rng.Float64() - 1
		}
	}

	slog.Info("client encryption", "distinct", c.Distinct, "dim", c.Dim)
	uploads := make([]*secagg.EncryptedUpdate, c.Distinct)
	wires := make([]wireUpload, c.Distinct)
	encTimes := make([]float64, 0, c.Distinct)
	var decodeTotal time.Duration
	for i, v := range vecs {
		enc, err := secagg.NewEncryptor(params, pk, secagg.EncryptorConfig{ClientID: clientID(i, c.Clients), Workers: c.Workers})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		u, err := enc.EncryptUpdate(1, v, 1)
		if err != nil {
			return nil, err
		}
		encTimes = append(encTimes, time.Since(t0).Seconds())
		b, err := u.MarshalBinary()
		if err != nil {
			return nil, err
		}
		r.UploadBytes = len(b)
		t0 = time.Now()
		var dec secagg.EncryptedUpdate
		if err := dec.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		decodeTotal += time.Since(t0)
		uploads[i] = &dec
		if wires[i], err = newWireUpload(b, dec.ClientID); err != nil {
			return nil, err
		}
	}
	slices.Sort(encTimes)
	r.ClientEncryptSec = encTimes[len(encTimes)/2]
	r.ClientEncryptPerMSec = r.ClientEncryptSec * 1e6 / float64(c.Dim)
	r.ServerDecodeSec = decodeTotal.Seconds() / float64(c.Distinct)
	r.UploadRatio = float64(r.UploadBytes) / float64(r.RawBytes)
	r.BytesPerVal = float64(r.UploadBytes) / float64(c.Dim)
	r.WireBitsPV = 8 * r.BytesPerVal
	{
		enc, err := secagg.NewEncryptor(params, pk, secagg.EncryptorConfig{ClientID: "single-thread", Workers: 1})
		if err != nil {
			return nil, err
		}
		var times, cpu []float64
		for i := 0; i < 3; i++ {
			c0, _ := processCPU()
			t0 := time.Now()
			if _, err := enc.EncryptUpdate(1, vecs[i%len(vecs)], 1); err != nil {
				return nil, err
			}
			times = append(times, time.Since(t0).Seconds())
			c1, _ := processCPU()
			cpu = append(cpu, (c1 - c0).Seconds())
		}
		slices.Sort(times)
		slices.Sort(cpu)
		r.ClientEncrypt1ThreadSec = times[1]
		r.ClientEncryptCPUPerMSec = cpu[1] * 1e6 / float64(c.Dim)
		r.ClientEncrypt1PerMSec = r.ClientEncrypt1ThreadSec * 1e6 / float64(c.Dim)
	}

	slog.Info("server sum", "clients", c.Clients, "repeat", c.Repeat)
	views := make([]secagg.EncryptedUpdate, c.Clients)
	for i := range views {
		views[i] = *uploads[i%c.Distinct] // shares the ciphertexts; Add only reads them
		views[i].ClientID = clientID(i, c.Clients)
	}
	var agg *secagg.Aggregator
	var exact []float64
	for rep := 0; rep < c.Repeat; rep++ {
		agg = nil
		runtime.GC()
		a, err := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: 1, Dim: c.Dim, Committee: committee, Workers: c.Workers})
		if err != nil {
			return nil, err
		}
		took, err := sumBinary(a, wires, c.Clients)
		if err != nil {
			return nil, err
		}
		r.ServerSumSec = best(r.ServerSumSec, took.Seconds())
		agg = a
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.HeapInUseMBPeak = float64(ms.HeapInuse) / (1 << 20)

		runtime.GC()
		decoded, err := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: 1, Dim: c.Dim, Committee: committee, Workers: c.Workers})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		for i := range views {
			if err := decoded.Add(&views[i]); err != nil {
				return nil, err
			}
		}
		r.ServerSumDecodedSec = best(r.ServerSumDecodedSec, time.Since(t0).Seconds())

		exact = make([]float64, c.Dim)
		t0 = time.Now()
		for i := 0; i < c.Clients; i++ {
			v := vecs[i%c.Distinct]
			for j, x := range v {
				exact[j] += x
			}
		}
		r.PlaintextSumSec = best(r.PlaintextSumSec, time.Since(t0).Seconds())
		par := make([]float64, c.Dim)
		t0 = time.Now()
		plaintextSumParallel(par, vecs, c.Clients, c.Workers)
		r.PlaintextSumParallelSec = best(r.PlaintextSumParallelSec, time.Since(t0).Seconds())
	}
	if err := measureCPU(r, params, session, committee, wires, vecs, c); err != nil {
		return nil, err
	}
	r.SumRatio = r.ServerSumSec / r.PlaintextSumSec
	r.SumRatioParallel = r.ServerSumSec / r.PlaintextSumParallelSec
	r.SumRatioDecoded = r.ServerSumDecodedSec / r.PlaintextSumSec

	slog.Info("threshold decryption", "threshold", c.Threshold, "absent", c.Absent)
	set := make([]secagg.MemberID, 0, c.Threshold)
	for id := c.Absent + 1; len(set) < c.Threshold; id++ {
		set = append(set, secagg.MemberID(id))
	}
	req, err := agg.DecryptionRequest(set)
	if err != nil {
		return nil, err
	}
	rb, _ := req.MarshalBinary()
	r.RequestBytes = len(rb)
	var shares []*secagg.DecryptionShare
	for _, id := range req.Members {
		t0 := time.Now()
		s, err := members[id-1].DecryptionShare(req)
		if err != nil {
			return nil, err
		}
		r.MemberShareSec = math.Max(r.MemberShareSec, time.Since(t0).Seconds())
		shares = append(shares, s)
	}
	sb, _ := shares[0].MarshalBinary()
	r.ShareBytes = len(sb)
	t0 := time.Now()
	res, err := agg.Combine(shares)
	if err != nil {
		return nil, err
	}
	r.CombineSec = time.Since(t0).Seconds()
	r.DecryptSec = r.MemberShareSec + r.CombineSec
	r.TotalWeightErr = math.Abs(res.TotalWeight - float64(c.Clients))
	r.DecryptedCount = res.Count
	r.ErrorClients = c.Distinct
	if c.ErrorClients > 0 {
		agg = nil
		views, uploads, wires = nil, nil, nil
		slog.Info("error pass", "clients", c.ErrorClients)
		t0 := time.Now()
		if res, exact, err = errorPass(params, session, committee, members, pk, set, c); err != nil {
			return nil, err
		}
		r.ErrorPassSec = time.Since(t0).Seconds()
		r.ErrorClients = c.ErrorClients
	}
	for j := range exact {
		r.MaxAbsError = math.Max(r.MaxAbsError, math.Abs(res.WeightedSum[j]-exact[j]))
	}
	r.MaxAbsErrorMean = r.MaxAbsError / float64(res.Count)
	if c.ErrorClients > 0 {
		r.MemoryNote += fmt.Sprintf("; the errors are of a separate sum of %d independently generated and encrypted client vectors", c.ErrorClients)
	} else {
		r.MemoryNote += fmt.Sprintf("; the errors are of the timed sum, whose %d distinct vectors repeat (the packed encoding's rounding errors repeat with them)", c.Distinct)
	}
	return r, nil
}

// benchParameters builds the parameters of the measurement.
func benchParameters(c Config) (secagg.Parameters, error) {
	lit := secagg.ParametersLiteral{LogN: c.LogN, LogScale: c.LogScale, FloodingSigma: c.FloodingSigma, MaxContributors: max(c.Clients, c.ErrorClients)}
	if c.Encoding != "packed" {
		return secagg.NewParameters(lit)
	}
	if c.LogScale != 0 {
		return secagg.Parameters{}, fmt.Errorf("--log-scale: the packed encoding derives the scale; leave it 0")
	}
	if c.ValueBits != 0 || c.Primes != 0 {
		lit.ValueBits, lit.Primes = c.ValueBits, c.Primes
		return secagg.NewParameters(lit)
	}
	return secagg.ChoosePacking(lit, c.TargetError, c.Dim)
}

// errorPass sums c.ErrorClients independent client vectors (generated, encrypted and added
// one at a time), decrypts with the member set and returns the result and the exact sum.
func errorPass(params secagg.Parameters, session secagg.SessionID, committee secagg.CommitteeConfig, members []*secagg.Member, pk *secagg.PublicKey, set []secagg.MemberID, c Config) (*secagg.AggregateResult, []float64, error) {
	agg, err := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: 2, Dim: c.Dim, Committee: committee, Workers: c.Workers})
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0xe7707))
	exact := make([]float64, c.Dim)
	v := make([]float64, c.Dim)
	for i := 0; i < c.ErrorClients; i++ {
		for j := range v {
			v[j] = 2*rng.Float64() - 1
			exact[j] += v[j]
		}
		enc, err := secagg.NewEncryptor(params, pk, secagg.EncryptorConfig{ClientID: fmt.Sprint("error-client-", i), Workers: c.Workers})
		if err != nil {
			return nil, nil, err
		}
		u, err := enc.EncryptUpdate(2, v, 1)
		if err != nil {
			return nil, nil, err
		}
		if err := agg.Add(u); err != nil {
			return nil, nil, err
		}
	}
	req, err := agg.DecryptionRequest(set)
	if err != nil {
		return nil, nil, err
	}
	var shares []*secagg.DecryptionShare
	for _, id := range req.Members {
		s, err := members[id-1].DecryptionShare(req)
		if err != nil {
			return nil, nil, err
		}
		shares = append(shares, s)
	}
	res, err := agg.Combine(shares)
	return res, exact, err
}

// measureCPU times the homomorphic sum (1 worker) and the plaintext sum by the process's
// CPU time, best of c.Repeat.
func measureCPU(r *Report, params secagg.Parameters, session secagg.SessionID, committee secagg.CommitteeConfig, wires []wireUpload, vecs [][]float64, c Config) error {
	if _, ok := processCPU(); !ok {
		return nil
	}
	pub, sigs := signVectors(vecs)
	for rep := 0; rep < c.Repeat; rep++ {
		a, err := secagg.NewAggregator(params, secagg.AggregatorConfig{Session: session, Round: 1, Dim: c.Dim, Committee: committee, Workers: 1})
		if err != nil {
			return err
		}
		runtime.GC()
		t0, _ := processCPU()
		if _, err := sumBinary(a, wires, c.Clients); err != nil {
			return err
		}
		t1, _ := processCPU()
		r.ServerSumCPUSec = best(r.ServerSumCPUSec, (t1 - t0).Seconds())
		runtime.GC()
		acc := make([]float64, c.Dim)
		t0, _ = processCPU()
		for i := 0; i < c.Clients; i++ {
			for j, x := range vecs[i%len(vecs)] {
				acc[j] += x
			}
		}
		t1, _ = processCPU()
		r.PlaintextSumCPUSec = best(r.PlaintextSumCPUSec, (t1 - t0).Seconds())
		runtime.GC()
		clear(acc)
		t0, _ = processCPU()
		if err := verifiedPlaintextSum(acc, vecs, sigs, pub, c.Clients); err != nil {
			return err
		}
		t1, _ = processCPU()
		r.PlaintextVerifiedCPUSec = best(r.PlaintextVerifiedCPUSec, (t1 - t0).Seconds())
	}
	if r.PlaintextSumCPUSec > 0 {
		r.SumRatioCPU = r.ServerSumCPUSec / r.PlaintextSumCPUSec
	}
	if r.PlaintextVerifiedCPUSec > 0 {
		r.SumRatioCPUVerified = r.ServerSumCPUSec / r.PlaintextVerifiedCPUSec
	}
	return nil
}

// signVectors signs the SHA-256 digest of each vector's bytes (plaintextBytes) with one
// Ed25519 key, for verifiedPlaintextSum.
func signVectors(vecs [][]float64) (ed25519.PublicKey, [][]byte) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	sigs := make([][]byte, len(vecs))
	for i, v := range vecs {
		d := sha256.Sum256(plaintextBytes(v))
		sigs[i] = ed25519.Sign(key, d[:])
	}
	return key.Public().(ed25519.PublicKey), sigs
}

// verifiedPlaintextSum adds n plaintext uploads into acc, cycling through vecs, as a
// plaintext server that checks each upload's signature first: SHA-256 of its bytes, then
// the Ed25519 signature of the digest.
func verifiedPlaintextSum(acc []float64, vecs [][]float64, sigs [][]byte, pub ed25519.PublicKey, n int) error {
	for i := range n {
		v := vecs[i%len(vecs)]
		d := sha256.Sum256(plaintextBytes(v))
		if !ed25519.Verify(pub, d[:], sigs[i%len(vecs)]) {
			return fmt.Errorf("secaggbench: the signature of plaintext vector %d does not verify", i%len(vecs))
		}
		for j, x := range v {
			acc[j] += x
		}
	}
	return nil
}

// plaintextBytes is the upload of a plaintext server: the vector's float64s as bytes
// (their memory; the same bytes as little-endian wire values on a little-endian machine).
func plaintextBytes(v []float64) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*len(v))
}

// clientID names client i of n; the ids of one run have one length (wireUpload).
func clientID(i, n int) string {
	return fmt.Sprintf("client-%0*d", len(fmt.Sprint(n-1)), i)
}

// wireUpload is a marshalled upload whose client id can be rewritten in place: the timed
// sums cycle through a few distinct uploads under distinct client ids, and the id is the
// one header field that differs between them (the benchmark's uploads are unsigned), so
// each add rewrites the id of its distinct upload's bytes, which clientID keeps at one
// length, instead of holding one marshalled copy per client.
type wireUpload struct {
	b     []byte
	idOff int
}

// newWireUpload locates id in the header of the marshalled upload b.
func newWireUpload(b []byte, id string) (wireUpload, error) {
	off := bytes.Index(b, []byte(id))
	if off < 0 {
		return wireUpload{}, fmt.Errorf("secaggbench: client id %q not found in its marshalled upload", id)
	}
	return wireUpload{b: b, idOff: off}, nil
}

// sumBinary adds n uploads to a as the server adds what it received
// (Aggregator.AddBinary), cycling through wires under the ids clientID gives, and returns
// the time the adds took (the ids' rewriting not included).
func sumBinary(a *secagg.Aggregator, wires []wireUpload, n int) (time.Duration, error) {
	var took time.Duration
	for i := range n {
		w, id := wires[i%len(wires)], clientID(i, n)
		copy(w.b[w.idOff:], id)
		accept := func(clientID, _ string) error {
			if clientID != id {
				return fmt.Errorf("secaggbench: the upload rewritten for %q names %q", id, clientID)
			}
			return nil
		}
		t0 := time.Now()
		err := a.AddBinary(w.b, accept)
		took += time.Since(t0)
		if err != nil {
			return 0, err
		}
	}
	return took, nil
}

// best returns the smaller positive of a (0 = unset) and b.
func best(a, b float64) float64 {
	if a == 0 || b < a {
		return b
	}
	return a
}

// plaintextSumParallel adds the same vectors in the same order as the 1-goroutine loop, with
// the coordinates split into contiguous ranges, one per worker.
func plaintextSumParallel(dst []float64, vecs [][]float64, clients, workers int) {
	var wg sync.WaitGroup
	step := (len(dst) + workers - 1) / workers
	for lo := 0; lo < len(dst); lo += step {
		hi := min(lo+step, len(dst))
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			d := dst[lo:hi]
			for i := 0; i < clients; i++ {
				v := vecs[i%len(vecs)][lo:hi]
				for j, x := range v {
					d[j] += x
				}
			}
		}(lo, hi)
	}
	wg.Wait()
}

// keySetup runs the whole key setup in memory and returns ready members and the public key.
func keySetup(params secagg.Parameters, session secagg.SessionID, committee secagg.CommitteeConfig, workers int) ([]*secagg.Member, *secagg.PublicKey, error) {
	ks, err := secagg.NewKeySetup(params, session, committee)
	if err != nil {
		return nil, nil, err
	}
	members := make([]*secagg.Member, committee.Size)
	for i := range members {
		m, err := secagg.NewMember(params, secagg.MemberConfig{Session: session, ID: secagg.MemberID(i + 1), Committee: committee, Workers: workers})
		if err != nil {
			return nil, nil, err
		}
		if err := ks.AddAnnouncement(m.Announcement()); err != nil {
			return nil, nil, err
		}
		members[i] = m
	}
	ro, err := ks.Roster()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		d, err := m.Deal(ro)
		if err != nil {
			return nil, nil, err
		}
		if err := ks.AddDealing(d); err != nil {
			return nil, nil, err
		}
	}
	pk, deliveries, err := ks.Finalize()
	if err != nil {
		return nil, nil, err
	}
	for i, m := range members {
		if err := m.ReceiveShares(deliveries[i]); err != nil {
			return nil, nil, err
		}
	}
	return members, pk, nil
}
