package train

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// featureCacheMagic starts a cached feature file; the example count and the feature width
// (uint64, little-endian) follow, then the features (float64, little-endian).
const featureCacheMagic = "confide-features-1\n"

// SetFeatureCache makes Featurize keep the output of a fixed feature stage (ScatterNet) on
// disk in dir, keyed by the dataset's content and the stage's spec, so a second run on the
// same data starts at once (MNIST's scattering features take minutes to compute and about
// 2 GB on disk). "" (the default) keeps them in memory only. The cache is a cache: a file
// that is missing, truncated or of another layout is computed again and replaced.
func (t *Trainer) SetFeatureCache(dir string) { t.featureCache = dir }

// featureKey identifies the features of ds under spec: a SHA-256 of the spec and of ds's
// shape and values.
func featureKey(spec *model.FeatureSpec, ds *data.Dataset) (string, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, featureCacheMagic)
	h.Write(js)
	var n [16]byte
	binary.LittleEndian.PutUint64(n[:8], uint64(ds.N))
	binary.LittleEndian.PutUint64(n[8:], uint64(ds.Dim))
	h.Write(n[:])
	h.Write(floatBytes(ds.X))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// floatBytes views x's memory as bytes (little-endian on every platform Go supports well;
// elsewhere the key and file merely differ from a little-endian machine's).
func floatBytes(x []float64) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 8*len(x))
}

// cachedFeaturize is Featurize through the disk cache in dir.
func cachedFeaturize(ctx context.Context, dir string, spec *model.FeatureSpec, f model.Features, ds *data.Dataset, onExamples func(int)) (*data.Dataset, error) {
	key, err := featureKey(spec, ds)
	if err != nil {
		return Featurize(ctx, f, ds, onExamples)
	}
	path := filepath.Join(dir, key+".f64")
	if c, err := readFeatures(path, ds, f.OutDim()); err == nil {
		if onExamples != nil {
			onExamples(ds.N)
		}
		return c, nil
	}
	c, err := Featurize(ctx, f, ds, onExamples)
	if err != nil {
		return nil, err
	}
	if err := writeFeatures(path, c); err != nil {
		// Only a cache: the run goes on with the features in memory.
		return c, nil
	}
	return c, nil
}

func readFeatures(path string, ds *data.Dataset, out int) (*data.Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head := len(featureCacheMagic) + 16
	if st.Size() != int64(head)+8*int64(ds.N)*int64(out) {
		return nil, fs.ErrNotExist
	}
	h := make([]byte, head)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, err
	}
	if string(h[:len(featureCacheMagic)]) != featureCacheMagic ||
		binary.LittleEndian.Uint64(h[len(featureCacheMagic):]) != uint64(ds.N) ||
		binary.LittleEndian.Uint64(h[len(featureCacheMagic)+8:]) != uint64(out) {
		return nil, errors.New("train: cached features of another layout")
	}
	c := *ds
	c.X, c.Dim, c.Shape = make([]float64, ds.N*out), out, nil
	if _, err := io.ReadFull(bufio.NewReaderSize(f, 1<<20), floatBytes(c.X)); err != nil {
		return nil, err
	}
	return &c, nil
}

// writeFeatures writes c's features to path through a temporary file renamed into place,
// so a reader never sees a partial file.
func writeFeatures(path string, c *data.Dataset) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".features-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	w := bufio.NewWriterSize(tmp, 1<<20)
	var n [16]byte
	binary.LittleEndian.PutUint64(n[:8], uint64(c.N))
	binary.LittleEndian.PutUint64(n[8:], uint64(c.Dim))
	io.WriteString(w, featureCacheMagic)
	w.Write(n[:])
	w.Write(floatBytes(c.X))
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("train: feature cache: %w", err)
	}
	return nil
}
