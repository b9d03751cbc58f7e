//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package dp

import "os"

// lockFile does nothing on platforms without flock or LockFileEx (Plan 9, js/wasm, AIX,
// Solaris, …): there a ledger's single owner is the operator's responsibility.
func lockFile(*os.File) error { return nil }
