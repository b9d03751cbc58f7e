package server

import (
	"fmt"
	"os"

	"github.com/confide-fl/confide/secagg"
)

// TempUploadStore returns an Options.UploadStore that keeps each fit aggregate's upload
// trees in a temporary file in dir (the system's temporary directory if empty). The file is
// unlinked as soon as it is created, so a crash leaves nothing behind: its space returns
// when the aggregate is released or the process ends. Each upload takes about 8 bytes per
// value there (secagg.Aggregator.StoredBytes), read back only to open spot checks.
func TempUploadStore(dir string) func() (secagg.LeafStore, error) {
	return func() (secagg.LeafStore, error) {
		f, err := os.CreateTemp(dir, "confide-uploads-*")
		if err != nil {
			return nil, fmt.Errorf("creating a temporary file for the round's uploads: %w (set TMPDIR to a writable directory with room for 8 bytes per parameter and client of a round)", err)
		}
		if err := os.Remove(f.Name()); err != nil {
			// Where an open file cannot be removed (Windows), it is removed when closed.
			return removedOnClose{f}, nil
		}
		return f, nil
	}
}

// removedOnClose is a temporary file removed when it is closed.
type removedOnClose struct{ *os.File }

func (f removedOnClose) Close() error {
	err := f.File.Close()
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}
