// Package train runs local training of a model on a dataset: epochs of shuffled mini-batches
// (or Poisson-sampled batches under DP-SGD), learning-rate schedules, and evaluation. It is
// what `confide train` runs centrally and what a federated client runs on its partition.
//
// Main types: Config (hyper-parameters), Trainer (one model, its optimizer and reusable batch
// buffers), Metrics (loss and accuracy). A Trainer is single-goroutine; run one per worker.
// Randomness (shuffling, dropout) comes from the Config's seed, so a run is reproducible.
package train
