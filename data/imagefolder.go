package data

import (
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// imageFile is one image of an image-folder dataset.
type imageFile struct {
	path  string
	class int32
}

// loadImageFolders reads an images dataset: one sub-directory of PNG/JPEG files per
// class, every image resized to the schema's size (see LoadSchema).
func loadImageFolders(ctx context.Context, ld *Loaded, dir, testDir string, o LoadOptions) error {
	s := ld.Schema
	if s.Label == nil {
		s.Label = &Label{}
	}
	if len(s.Label.Classes) == 0 {
		subs, err := classDirs(dir)
		if err != nil {
			return err
		}
		s.Label.Classes = subs
		ld.Fitted = append(ld.Fitted, fmt.Sprintf("label.classes (%d sub-directories)", len(subs)))
	}
	bad := &badRows{skip: o.SkipBadRows}
	files, err := listImages(dir, s.Label.Classes)
	if err != nil {
		return err
	}
	train, err := decodeImages(ctx, s, files, bad)
	if err != nil {
		return err
	}
	if err := bad.err(); err != nil {
		return err
	}
	if train.N == 0 {
		return fmt.Errorf("data: %s: no images: %w", dir, ErrFormat)
	}
	trIdx, teIdx, err := splitRows(s, train.N, train.Y, testDir != "", o)
	if err != nil {
		return err
	}
	if testDir != "" {
		tf, err := listImages(testDir, s.Label.Classes)
		if err != nil {
			return err
		}
		if ld.Test, err = decodeImages(ctx, s, tf, bad); err != nil {
			return err
		}
		if err := bad.err(); err != nil {
			return err
		}
		ld.Train = train
	} else {
		ld.Train = train.Subset(trIdx)
		if teIdx != nil {
			ld.Test = train.Subset(teIdx)
		}
	}
	bad.record(ld)
	return nil
}

// classDirs lists the sub-directories of dir, sorted: the classes of an image folder.
func classDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var subs []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			subs = append(subs, e.Name())
		}
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("data: %s has no sub-directories; an images dataset holds one per class: %w", dir, ErrFormat)
	}
	return subs, nil
}

// listImages returns the files of the class sub-directories of dir, in class and name
// order. A sub-directory that is not a class is an error: its images would be lost.
func listImages(dir string, classes []string) ([]imageFile, error) {
	subs, err := classDirs(dir)
	if err != nil {
		return nil, err
	}
	ids := indexOf(classes)
	for _, sub := range subs {
		if _, ok := ids[sub]; !ok {
			return nil, fmt.Errorf("data: %s: sub-directory %q is not one of the classes %q (add it to label.classes or move it away): %w", dir, sub, classes, ErrFormat)
		}
	}
	var files []imageFile
	for id, c := range classes {
		ents, err := os.ReadDir(filepath.Join(dir, c))
		if os.IsNotExist(err) {
			continue // a client may hold no example of a class
		}
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			files = append(files, imageFile{path: filepath.Join(dir, c, e.Name()), class: int32(id)})
		}
	}
	return files, nil
}

// decodeImages decodes and resizes files into a dataset; files that are not PNG or JPEG
// images go to bad.
func decodeImages(ctx context.Context, s *Schema, files []imageFile, bad *badRows) (*Dataset, error) {
	h, w, ch := s.Image.Height, s.Image.Width, 3
	shape := []int{h, w, 3}
	if s.Image.Grey {
		ch, shape = 1, []int{h, w}
	}
	dim := h * w * ch
	d := &Dataset{Dim: dim, Shape: shape, Task: TaskClassify, NumClasses: len(s.Label.Classes),
		ClassNames: slices.Clone(s.Label.Classes), Normalization: PixelNormalization()}
	for k, f := range files {
		if k%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		img, err := decodeImageFile(f.path)
		if err != nil {
			bad.add(&BadRowError{File: filepath.Join(filepath.Base(filepath.Dir(f.path)), filepath.Base(f.path)), Reason: err.Error()})
			continue
		}
		d.X = append(d.X, make([]float64, dim)...)
		resizeInto(d.X[len(d.X)-dim:], img, h, w, s.Image.Grey)
		d.Y = append(d.Y, f.class)
		d.N++
	}
	if d.X == nil {
		d.X = []float64{}
	}
	return d, nil
}

func decodeImageFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("not a PNG or JPEG image (%v)", err)
	}
	if format != "png" && format != "jpeg" {
		return nil, fmt.Errorf("a %s image, want PNG or JPEG", format)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("an empty image")
	}
	return img, nil
}

// resizeInto writes img resized to h×w into dst (channels last, values in [0, 1]): every
// output pixel is the area-weighted mean of the source pixels its footprint covers (a box
// filter, which neither aliases when shrinking nor blurs when the size is kept), in grey
// (ITU-R BT.601 luma) or RGB.
func resizeInto(dst []float64, img image.Image, h, w int, grey bool) {
	b := img.Bounds()
	sh, sw := b.Dy(), b.Dx()
	// Source pixels as floats in [0, 1], channels last.
	src := make([]float64, sh*sw*3)
	for y := 0; y < sh; y++ {
		for x := 0; x < sw; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			p := src[(y*sw+x)*3:]
			p[0], p[1], p[2] = float64(r)/65535, float64(g)/65535, float64(bl)/65535
		}
	}
	fy, fx := float64(sh)/float64(h), float64(sw)/float64(w)
	var acc [3]float64
	for oy := 0; oy < h; oy++ {
		y0, y1 := float64(oy)*fy, float64(oy+1)*fy
		for ox := 0; ox < w; ox++ {
			x0, x1 := float64(ox)*fx, float64(ox+1)*fx
			acc = [3]float64{}
			area := 0.0
			for y := int(y0); y < sh && float64(y) < y1; y++ {
				cy := min(y1, float64(y+1)) - max(y0, float64(y))
				for x := int(x0); x < sw && float64(x) < x1; x++ {
					a := cy * (min(x1, float64(x+1)) - max(x0, float64(x)))
					p := src[(y*sw+x)*3:]
					acc[0] += a * p[0]
					acc[1] += a * p[1]
					acc[2] += a * p[2]
					area += a
				}
			}
			o := oy*w + ox
			if grey {
				dst[o] = (0.299*acc[0] + 0.587*acc[1] + 0.114*acc[2]) / area
				continue
			}
			dst[o*3], dst[o*3+1], dst[o*3+2] = acc[0]/area, acc[1]/area, acc[2]/area
		}
	}
}

// loadIDXDir reads an idx dataset: a directory with MNIST's four files.
func loadIDXDir(ld *Loaded, dir string, o LoadOptions) error {
	paths, err := findIDXImageSet(dir)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	classes := ld.Schema.Label.Classes
	if ld.Train, err = LoadIDXImages(paths[0], paths[1], "train", classes); err != nil {
		return err
	}
	if !o.NoTestSplit {
		if ld.Test, err = LoadIDXImages(paths[2], paths[3], "test", classes); err != nil {
			return err
		}
	}
	return nil
}
