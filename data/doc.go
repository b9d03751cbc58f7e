// Package data owns Confide's datasets: reading them from files (IDX, CSV, play text,
// JSON lines of e-mail), generating FedProx's Synthetic(α, β), tokenizing text,
// normalising features, batching, and splitting a dataset across federated clients.
//
// The central type is Dataset: N labelled examples in memory as flat row-major slices,
// either dense features (X, Dim) or token sequences (Tokens, SeqLen, Lengths, padded with
// PadID), with class labels (Y, TaskClassify) or per-position next-token targets
// (Targets, TaskNextToken), and optionally a natural group per example (Group, e.g. a
// device, a speaking role, a mailbox). Around it:
//
//   - Batching: BatchIterator (or Batches) deals out shuffled index batches;
//     Dataset.Gather copies their rows into a reusable Batch without allocating.
//   - Loaders: ReadIDX; LoadMNIST (cached from the GoMNIST Go module, see MNISTDir) and
//     LoadFashionMNIST; LoadCSV; LoadShakespeare (ShakespeareCorpus, next character,
//     one group per role); LoadSpamAssassin (SpamCorpus, one group per mailbox);
//     Synthetic; Bars (tiny 8×8 images for tests of image feature stages).
//   - Files described by a Schema (a dataset spec, YAML): CSV/TSV tables (numeric columns
//     standardised or min-max scaled, categorical ones one-hot, ordinal or embedded, missing
//     values filled or refused), JSON-lines text (a tokenizer and its vocabulary), image folders
//     (one sub-directory per class, PNG/JPEG resized, grey or RGB) and IDX directories;
//     LoadSchema reads them, with a BadRowError naming file, line and column for every
//     record that does not fit (or a count of those skipped). A federation ships its
//     Schema to the clients (Schema.Shipped, ParseSchemaJSON), so every client encodes its
//     own files the same way; ValidateFederated insists that classes, categories,
//     vocabulary and normalisation statistics are in it, never fitted on one client's data,
//     except a column's (or the target's) mean and std given as a range to estimate: its
//     Estimates, which the federation's statistics round sums noised over the clients'
//     rows (StatisticsSums, WithStatistics).
//     SyntheticHousing generates a house-price table split by region, for examples.
//   - Embedded categorical columns (encoding: embedding, dim: D): an encoded example keeps
//     its columns' features in column order, and an embedded column is one feature holding
//     the category's index in [0, k) — −1 for a missing or unknown value that the schema
//     allows (missing: zero, unknown: zero), looked up as the zero vector; otherwise such a
//     value is a BadRowError naming file, line and column, as for the other encodings.
//     Dataset.Embedded (from Schema.Embedded) lists these features with their category
//     counts and widths (D, or DefaultEmbeddingDim: fastai's min(600, round(1.6·k^0.56)));
//     a model with an embedding stage (model.EmbeddingSpec, which has the same fields)
//     looks them up in learned k×D tables. The schema a federation ships carries encoding
//     and dim, so every client encodes the same indices and builds the same model.
//   - Regression: TaskRegress datasets carry real-valued Values (N×NumValues), standardised
//     as ValueNormalization records.
//   - Text: CharTokenizer and WordTokenizer, vocabularies built from training text only;
//     a text dataset's TextEncoding records them (and the e-mail cleaning) so that a
//     TextEncoder encodes new text as training did. A jsonl dataset's text may instead be
//     a bag of words (text.encoding: bag, BagEncoder): dense features, one per vocabulary
//     word, binary or counts, scaled to L2 norm 1 (0 for a text without a vocabulary
//     word), for an mlp; its schema, shipped or in a model file, is its record.
//   - E-mails: SenderDomain reads the domain of a raw e-mail's From header (net/mail);
//     datasets of e-mails (jsonl, SpamAssassin) carry it per example (Dataset.SenderDomain)
//     for the sender-domain partition.
//   - Features: Standardizer and MinMaxScaler, fitted on training data, applied to any; a
//     dense dataset's Normalization records the map from raw values (pixels / 255 for the
//     IDX images, composed with every scaler applied) for inference on raw inputs.
//   - Splits: StratifiedSplit; partitioners PartitionIID, PartitionDirichlet,
//     PartitionShards, PartitionNatural and PartitionClusters (whole clusters per client,
//     packed largest first), chosen by a PartitionSpec ("iid", "dirichlet:0.5", "shards:2",
//     "natural", "sender-domain"); LabelSkew measures the result.
//
// Invariants:
//   - Inputs are never modified: loaders, Subset, scalers, splits and partitioners
//     return new values and leave their arguments as they were. Subset copies rows, so
//     a client's dataset shares no memory with the one it came from.
//   - Every Dataset returned by this package passes Validate.
//   - A partition uses every index of its dataset exactly once.
//   - Randomness is injected as a *rand.Rand (math/rand/v2): the same seed gives the same
//     shuffles, splits, partitions and synthetic data on every machine.
//   - Bad input from a file is an error naming the file, the line or field, and the fix,
//     never a panic; errors about malformed content wrap ErrFormat. Panics are kept for
//     programming errors: an index out of range in Subset or Gather, a Gather
//     destination of the wrong length.
//   - Library code reads no flags and no environment of its own; the cache directory
//     comes from os.UserCacheDir, and --data-dir in messages refers to the CLI flag
//     that callers map to the dir arguments.
package data
