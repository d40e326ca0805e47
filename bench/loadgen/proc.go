package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat; it is 100 on every architecture Go supports there.
const clockTicks = 100

// ProcCPU is one process's CPU use over the measured period.
type ProcCPU struct {
	Pid              int     `json:"pid"`
	Seconds          float64 `json:"cpu_s"`
	Cores            float64 `json:"cores"`
	MicrosPerRequest float64 `json:"us_per_request"`
}

func parsePids(s string) (map[string]int, error) {
	procs := map[string]int{}
	if s == "" {
		return procs, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, pid, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("-pids: %q is not name=pid", part)
		}
		procs[name] = n
	}
	return procs, nil
}

// sampleProcs reads each process's CPU time at from and at to, so the
// figure covers exactly the measured window (not start-up or warm-up).
func sampleProcs(procs map[string]int, from, to time.Time) map[string]ProcCPU {
	if len(procs) == 0 {
		return nil
	}
	time.Sleep(time.Until(from))
	t0 := time.Now()
	before := map[string]float64{}
	for name, pid := range procs {
		before[name] = procCPU(pid)
	}
	time.Sleep(time.Until(to))
	elapsed := time.Since(t0).Seconds()
	out := map[string]ProcCPU{}
	for name, pid := range procs {
		s := procCPU(pid) - before[name]
		out[name] = ProcCPU{Pid: pid, Seconds: s, Cores: s / elapsed}
	}
	return out
}

// procCPU is utime+stime of pid in seconds, or 0 if it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// loadAvg is the 1-minute load average, or 0 off Linux.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// ProcRSS is one process's resident memory over the load, sampled every
// 200 ms from /proc/<pid>/status (kB).
type ProcRSS struct {
	PeakKB int64 `json:"peak_kb"`
	// PeakAnonKB is RssAnon at the peak: the heap, as opposed to mapped
	// file pages (RssFile), which the kernel can reclaim.
	PeakAnonKB int64 `json:"peak_anon_kb"`
	EndKB      int64 `json:"end_kb"`
	Samples    int   `json:"samples"`
}

// sampleRSS samples the processes' RSS until done is closed.
func sampleRSS(procs map[string]int, done <-chan struct{}) map[string]ProcRSS {
	if len(procs) == 0 {
		return nil
	}
	out := map[string]ProcRSS{}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		for name, pid := range procs {
			st := procStatus(pid)
			if st == nil {
				continue
			}
			m := out[name]
			m.Samples++
			m.EndKB = st["VmRSS"]
			if m.EndKB > m.PeakKB {
				m.PeakKB, m.PeakAnonKB = m.EndKB, st["RssAnon"]
			}
			out[name] = m
		}
		select {
		case <-done:
			return out
		case <-t.C:
		}
	}
}

// procStatus returns the kB fields of /proc/<pid>/status, or nil.
func procStatus(pid int) map[string]int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	return parseStatus(string(b))
}

// parseStatus reads the "Name:  123 kB" lines of a /proc status file.
func parseStatus(s string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out
}
