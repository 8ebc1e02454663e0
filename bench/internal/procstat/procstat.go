// Package procstat reads what the side-by-side benchmarks measure of a
// process from /proc: its CPU time and its resident memory.
package procstat

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU returns the utime and stime (all threads) of the process whose /proc
// directory is /proc/<pid> ("self" works), in clock ticks of 10 ms (USER_HZ
// is 100 on Linux). Zero when it cannot be read.
func CPU(pid string) (user, sys time.Duration) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond
}

// RSS returns VmRSS of /proc/<pid>/status in bytes (0 when unknown).
func RSS(pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
