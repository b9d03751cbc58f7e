package main

import (
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress returns a progress bar with ETA on stderr when stderr is a terminal, and nil
// (no output) otherwise, so logs and pipes stay clean.
func newProgress(total int64, desc string) *progressbar.ProgressBar {
	return newBar(total, desc, progressbar.OptionShowCount())
}

// newProgressBytes is newProgress for a download of size bytes (−1: unknown), counting
// bytes.
func newProgressBytes(size int64, desc string) *progressbar.ProgressBar {
	return newBar(size, desc, progressbar.OptionShowBytes(true))
}

func newBar(total int64, desc string, count progressbar.Option) *progressbar.ProgressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		count,
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
}
