//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package dp

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes flock(2)'s exclusive lock on f without blocking. The lock belongs to the
// open file description, so a second open of the same file, in this process or another,
// cannot take it; the kernel drops it when the descriptor is closed or the process dies.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrLedgerInUse
		default:
			return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
}
