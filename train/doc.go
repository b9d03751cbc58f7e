// Package train runs local training of a model on a dataset: epochs of shuffled mini-batches
// (or Poisson-sampled batches under DP-SGD), learning-rate schedules, and evaluation. It is
// what `confide train` runs centrally and what a federated client runs on its partition.
//
// Main types: Config (hyper-parameters), Trainer (one model, its optimizer and reusable batch
// buffers), Metrics (loss and accuracy). A Trainer is single-goroutine; run one per worker.
// Randomness (shuffling, dropout) comes from the Config's seed, so a run is reproducible.
//
// A model with a feature stage (model.Features, e.g. scattering) is trained on its features:
// the Trainer transforms each dataset it is given once (Featurize), keeps the transformed
// copy in memory for its lifetime, and feeds batches of it with model.Input.Transformed set,
// instead of transforming every batch of every epoch. Where many trainers read one dataset
// (a simulator's virtual clients), the package function Featurize transforms it once, and
// each Trainer is told where the features are (UseFeatures); EvaluateFeatures evaluates on
// them.
//
// Embedded categorical columns (data.Dataset.Embedded, a schema's encoding: embedding):
// FitEmbeddings gives an mlp spec that leaves out embeddings the dataset's tables, as
// confide train and confide sim do (the federation's server does the same with the schema
// it ships), and CheckCompatible refuses a model that would read the category indices as
// numbers or whose tables differ from the dataset's.
//
// Compression: a pruned model (model.Mask) keeps its zeros through every step, and
// Distill (or Trainer.Distill) trains a student on a teacher's temperature-softened outputs
// mixed with the labels (Hinton et al. 2015), or on the teacher's outputs alone on a public
// unlabelled set: the server-side step after a federation that touches no client's data.
//
// For the model file and for inference: DatasetMeta says what a model trained on a dataset
// needs to read new raw inputs (class names, normalisation, tokenizer; model.Meta),
// TextEncoder rebuilds the recorded tokenizer, and EachOutput hands every labelled row's
// logits to a caller (package metrics turns them into a report).
package train
