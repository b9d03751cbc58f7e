// Package data owns Confide's datasets: loading them from files (IDX, CSV, plain text,
// JSON lines), generating the Synthetic(α, β) benchmark, tokenizing text, normalising
// features, batching, and splitting a dataset across federated clients (IID, Dirichlet
// label skew, McMahan et al.'s shards, natural groups).
//
// The central type is Dataset: N labelled examples held in memory as flat row-major
// slices, either dense features (X, Dim) or token sequences (Tokens, SeqLen, Lengths),
// with class labels (Y) or per-position next-token targets (Targets). BatchIterator
// deals out index batches and Dataset.Gather copies their rows into a reusable Batch.
// IDX files are read by ReadIDX; LoadMNIST and LoadFashionMNIST build image datasets.
//
// Invariants:
//   - Inputs are never modified: loaders, Subset, scalers and partitioners return new
//     values and leave their arguments as they were.
//   - Every Dataset returned by this package passes Validate.
//   - Randomness is injected as a *rand.Rand (math/rand/v2); the same seed gives the same
//     shuffles, splits and partitions on every machine.
//   - Bad input from a file is an error naming the file, the line or field, and the fix,
//     never a panic; errors about malformed content wrap ErrFormat. Panics are reserved
//     for programming errors (an index out of range in Subset or Gather).
package data
