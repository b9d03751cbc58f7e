package main

import (
	"context"
	"fmt"

	"github.com/confide-fl/confide/data"
)

// loadDataset returns the train and test sets of a named dataset.
func loadDataset(ctx context.Context, name, dataDir string) (train, test *data.Dataset, err error) {
	switch name {
	case "mnist":
		train, test, err = data.LoadMNISTContext(ctx, dataDir)
	case "fashion-mnist", "fashion_mnist", "fmnist":
		train, test, err = data.LoadFashionMNIST(dataDir)
	default:
		return nil, nil, fmt.Errorf("--dataset %q unknown (use mnist or fashion-mnist)", name)
	}
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}
