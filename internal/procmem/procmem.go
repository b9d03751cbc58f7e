// Package procmem reads the process's peak resident set (VmHWM) from Linux's /proc, for
// the memory measurements of the load tests (server and sim).
package procmem

import (
	"os"
	"strconv"
	"strings"
)

// ResetPeak resets the process's VmHWM to its current RSS (Linux; elsewhere a no-op).
func ResetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// Peak returns the process's VmHWM in bytes (0 where /proc is missing).
func Peak() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			k, _ := strconv.ParseUint(f[1], 10, 64)
			return k << 10
		}
	}
	return 0
}
