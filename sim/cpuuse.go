package sim

import (
	"runtime"
	"runtime/metrics"
)

// cpuUse is a reading of the Go runtime's CPU accounting: Total is GOMAXPROCS integrated
// over wall time, Idle the part of it in which a processor had no goroutine to run.
type cpuUse struct{ idle, total float64 }

// readCPUUse reads the runtime's CPU classes (runtime/metrics). The runtime brings them up
// to date only at a garbage collection, so it runs one first: twice a run.
func readCPUUse() cpuUse {
	runtime.GC()
	s := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return cpuUse{idle: s[0].Value.Float64(), total: s[1].Value.Float64()}
}

// parallelEfficiency is the share of the processors' time since start in which they had
// work: 1 when every core was busy, 1/GOMAXPROCS when the run was serial. A thread the
// operating system holds off a core still counts as busy, so other processes on the machine
// do not lower it, unlike CPU time over wall time. The runtime's own work (collections, a
// processor spinning in search of goroutines) counts as busy, so a serial run on two
// processors measures about 0.6, not 0.5 (TestParallelEfficiency).
func (start cpuUse) parallelEfficiency(end cpuUse) float64 {
	total := end.total - start.total
	if !(total > 0) {
		return 0
	}
	return 1 - (end.idle-start.idle)/total
}
