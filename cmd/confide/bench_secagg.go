package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/secagg/secaggbench"
)

func init() { benchChildren = append(benchChildren, newBenchSecaggCmd) }

func newBenchSecaggCmd(g *globalOptions) *cobra.Command {
	c := secaggbench.Config{}
	cmd := &cobra.Command{
		Use:   "secagg",
		Short: "Secure aggregation: client encryption, upload bytes, encrypted vs plaintext sum, threshold decryption, error",
		Long: `Run threshold-CKKS secure aggregation end to end in one process: key setup for a
committee of --committee members (threshold --threshold), client encryption of
--params values per update, the server's homomorphic sum of --clients uploads timed against
a plaintext float64 sum of the same vectors (the uploads added from their bytes, as the
server adds what it receives; the sum of the same uploads decoded beforehand is reported
beside it), threshold decryption with --absent members
missing, and the largest error of the decoded sum against the exact sum.

To keep memory flat only --distinct client vectors are generated and encrypted for the
timed sum, which cycles through them (under distinct client ids). The error is measured on
a separate sum of --error-clients independent vectors (default: --clients), each generated,
encrypted and added in turn; 0 measures it on the timed sum instead. The output says which.

--encoding packed (the default) quantises every value to a few bits and packs several per
ciphertext coefficient (secagg's packed encoding; the parameters are chosen from
--target-error, the largest error of the mean update, and --clients, unless --value-bits
and --primes are given; a federation that leaves secure_aggregation.value_bits unset
uses --value-bits 14); --encoding float is the one-value-per-coefficient encoding
(value_bits 0).

  confide bench secagg --params 1000000 --clients 1000 -o json
  confide bench secagg --params 1000000 --clients 1000 --value-bits 14 -o json
  confide bench secagg --params 1000000 --clients 1000 --encoding float --error-clients 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.ErrorClients == -1 {
				c.ErrorClients = c.Clients
			}
			r, err := secaggbench.Run(c)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "secure aggregation: d=%d, %d clients, committee %d (threshold %d, %d absent), LogN %d, %d ciphertexts/update, %d workers\n",
					r.Dim, r.Clients, r.Committee, r.Threshold, r.Absent, r.LogN, r.Chunks, r.Workers)
				fmt.Fprintf(w, "  key setup            %8.3f s\n", r.KeySetupSec)
				fmt.Fprintf(w, "  client encrypt       %8.3f s per update (%.3f s per 1e6 values; 1 thread %.3f s per 1e6)\n", r.ClientEncryptSec, r.ClientEncryptPerMSec, r.ClientEncrypt1PerMSec)
				if r.ClientEncryptCPUPerMSec > 0 {
					fmt.Fprintf(w, "  client encrypt CPU   %8.3f s per 1e6 values, 1 thread\n", r.ClientEncryptCPUPerMSec)
				}
				if r.Encoding == "packed" {
					fmt.Fprintf(w, "  encoding             packed: %d-bit values (step %.3g), %d per coefficient, %d primes\n", r.ValueBits, r.QuantStep, r.PerCoeff, r.Primes)
				} else {
					fmt.Fprintf(w, "  encoding             float: one value per coefficient, LogScale %d\n", r.LogScale)
				}
				fmt.Fprintf(w, "  upload               %8d bytes (%.3f× raw float64 %d bytes; %.2f bytes, %.1f bits per value)\n", r.UploadBytes, r.UploadRatio, r.RawBytes, r.BytesPerVal, r.WireBitsPV)
				fmt.Fprintf(w, "  server decode        %8.3f s per upload\n", r.ServerDecodeSec)
				fmt.Fprintf(w, "  server encrypted sum %8.3f s vs plaintext sum %.3f s (1 thread): %.2f× (vs %d-thread plaintext %.3f s: %.2f×)\n",
					r.ServerSumSec, r.PlaintextSumSec, r.SumRatio, r.Workers, r.PlaintextSumParallelSec, r.SumRatioParallel)
				fmt.Fprintf(w, "  same, uploads decoded %8.3f s: %.2f× (decoding not counted: %.3f s per upload)\n", r.ServerSumDecodedSec, r.SumRatioDecoded, r.ServerDecodeSec)
				if r.SumRatioCPU > 0 {
					fmt.Fprintf(w, "  same sums in CPU time, 1 thread: %.3f s vs %.3f s: %.2f×\n", r.ServerSumCPUSec, r.PlaintextSumCPUSec, r.SumRatioCPU)
				}
				if r.SumRatioCPUVerified > 0 {
					fmt.Fprintf(w, "  vs a plaintext sum checking a signature per upload (SHA-256 + Ed25519), CPU, 1 thread: %.3f s: %.2f×\n", r.PlaintextVerifiedCPUSec, r.SumRatioCPUVerified)
				}
				fmt.Fprintf(w, "  decryption           %8.3f s (slowest member %.3f s + combine %.3f s); request %d bytes, share %d bytes\n",
					r.DecryptSec, r.MemberShareSec, r.CombineSec, r.RequestBytes, r.ShareBytes)
				fmt.Fprintf(w, "  max |error|          %8.2e of the sum, %.2e of the mean, over %d independent clients (predicted std of the sum %.2e), decrypted count %d\n", r.MaxAbsError, r.MaxAbsErrorMean, r.ErrorClients, r.PredictedStd, r.DecryptedCount)
				fmt.Fprintf(w, "  note: %s\n", r.MemoryNote)
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Dim, "params", 1_000_000, "values per client update (d)")
	f.IntVar(&c.Clients, "clients", 1000, "client updates summed by the server")
	f.IntVar(&c.Committee, "committee", 10, "key committee size K")
	f.IntVar(&c.Threshold, "threshold", 6, "members needed to decrypt, t")
	f.IntVar(&c.Absent, "absent", 4, "committee members absent at decryption (at most K−t)")
	f.IntVar(&c.LogN, "logn", 14, "log2 of the ring degree (values per ciphertext), 12…16")
	f.IntVar(&c.LogScale, "log-scale", 0, "log2 of the encoding scale Δ (0: default 45); lower it to fit more clients")
	f.Float64Var(&c.FloodingSigma, "flooding-sigma", 0, "flooding noise σ of decryption shares (0: default 2^30)")
	f.IntVar(&c.Distinct, "distinct", 8, "distinct client vectors actually encrypted; the sums cycle through them")
	f.IntVar(&c.Workers, "workers", runtime.GOMAXPROCS(0), "goroutines for encryption, the encrypted sum and decryption")
	f.Uint64Var(&c.Seed, "seed", 1, "seed of the client vectors")
	f.IntVar(&c.Repeat, "repeat", 3, "run each sum this many times and report the fastest")
	f.StringVar(&c.Encoding, "encoding", "packed", "ciphertext encoding: packed (quantised values packed per coefficient) or float (one value per coefficient)")
	f.Float64Var(&c.TargetError, "target-error", 1e-4, "packed: the largest error of the mean update the parameters are chosen for")
	f.IntVar(&c.ValueBits, "value-bits", 0, "packed: bits per quantised value (0: chosen from --target-error)")
	f.IntVar(&c.Primes, "primes", 0, "packed: 60-bit primes of the modulus (0: chosen)")
	f.IntVar(&c.ErrorClients, "error-clients", -1, "independent client vectors whose sum the error is measured on (-1: --clients; 0: the timed sum)")
	return cmd
}
