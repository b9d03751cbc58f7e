// Package explain explains a trained model's outputs: which inputs a prediction rests on
// (integrated gradients), which features the model relies on over a dataset (permutation
// importance), and where a Transformer looks (attention maps); and draws them (saliency and
// attention heatmaps as PNG, token attributions as HTML or PNG).
//
// Methods:
//   - IntegratedGradients (Sundararajan, Taly, Yan 2017, "Axiomatic Attribution for Deep
//     Networks", eq. 1): attribution_j = (x_j − x'_j)·∫₀¹ ∂f(x' + α(x − x'))/∂x_j dα for an
//     input x, a baseline x' and f the target class's logit (or probability). The integral
//     is a Gauss–Legendre quadrature (Captum's default), one batched forward and backward
//     pass per chunk of nodes. Completeness: Σ_j attribution_j = f(x) − f(x') up to the
//     quadrature error, which every result reports (CompletenessError) so that a caller can
//     raise Steps. It works on any differentiable model at its representation
//     (model.Model.Representation): the dense inputs of an mlp; the token embeddings of the
//     sequence models, where a token's attribution is the sum over its embedding's
//     dimensions and the baseline is the zero embedding at every position; likewise an
//     mlp's embedded categorical columns (model.ColumnEmbeddings), whose baseline is the
//     zero vector (a missing category) and whose attribution sums their vectors'
//     dimensions (model.Model.InputFeatures). A model whose
//     feature stage has no gradient (scattering) is refused up front (ErrNoGradient).
//   - PermutationImportance (Breiman 2001, "Random Forests", Sec. 10; Fisher, Rudin,
//     Dominici 2019, model reliance): the increase of the loss and the drop of accuracy on a
//     dataset when a group of features (a column, a pixel, an image patch) is shuffled
//     across the examples, mean and standard deviation over repeats. It needs forward passes
//     only, so it works on every dense model, int8 and feature stages included.
//   - AttentionMaps: the softmax weights of every self-attention layer and head of a
//     Transformer for one example (rows: query positions, columns: key positions).
//
// Invariants: models and datasets are never modified (a model is run, never trained; its
// gradient buffer is used as scratch); randomness (the permutations) is injected as
// *rand.Rand; an int8 model is differentiated through its dequantised weights (the float
// path Backward uses), so f(x) and f(x') of an int8 model's attribution are those of that
// path. A Model is not safe for concurrent use: explain one model per goroutine.
//
// Privacy: an explanation is a function of the data it is computed on. Attributions of a
// training example reveal that example (its pixels shape the saliency map, its words are
// printed in the token map), and permutation importance on a private dataset is an
// aggregate of it released without noise: the DP guarantee of a model trained with DP-SGD
// covers the model, not its explanations on private data. Explain on public data, on data
// the model's users supply themselves, or on a held-out split that is not sensitive.
package explain
