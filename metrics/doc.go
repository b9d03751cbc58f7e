// Package metrics computes the quality of a trained model's predictions: accuracy, mean
// cross-entropy and perplexity, per-class precision, recall and F1, macro-F1, the confusion
// matrix, and ROC AUC for two classes. It is pure arithmetic on logits and labels; running a
// model over a dataset is train's job (train.EachOutput), reading files the CLI's.
//
// Main types: Classification, an accumulator fed one labelled row at a time (an example of
// a classifier, or a position of a next-token model), and its Report. AUC is the rank
// statistic on its own.
//
// Conventions (those of scikit-learn's classification_report, so results compare):
//   - The predicted class is the arg max of the logits, the first on a tie (as the model's
//     loss counts accuracy).
//   - Precision of a class never predicted and recall of a class absent from the labels are
//     0; F1 is 0 when precision and recall are both 0.
//   - Macro-F1 averages F1 over the classes that occur among the labels or the predictions
//     (sklearn's default label set), so the unused ids of a vocabulary do not drag it down.
//   - Loss is in nats per row; perplexity is exp(loss) (per token for a language model).
//
// These are not the Prometheus metrics of server/metrics.go.
package metrics
