package lifecycle

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// expo builds a Prometheus text exposition (format version 0.0.4).
type expo struct{ b []byte }

// header writes a family's HELP and TYPE lines.
func (e *expo) header(name, help, kind string) {
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = appendEscaped(e.b, help, false)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, kind...)
	e.b = append(e.b, '\n')
}

// sample writes one sample line, with one label when label is not empty.
func (e *expo) sample(name, label, value string, v float64) {
	e.b = append(e.b, name...)
	if label != "" {
		e.b = append(e.b, '{')
		e.b = append(e.b, label...)
		e.b = append(e.b, `="`...)
		e.b = appendEscaped(e.b, value, true)
		e.b = append(e.b, `"}`...)
	}
	e.b = append(e.b, ' ')
	switch {
	case math.IsInf(v, 1):
		e.b = append(e.b, "+Inf"...)
	case math.IsInf(v, -1):
		e.b = append(e.b, "-Inf"...)
	case math.IsNaN(v):
		e.b = append(e.b, "NaN"...)
	default:
		e.b = strconv.AppendFloat(e.b, v, 'g', -1, 64)
	}
	e.b = append(e.b, '\n')
}

// one writes a family of a single sample without labels.
func (e *expo) one(name, help, kind string, v float64) {
	e.header(name, help, kind)
	e.sample(name, "", "", v)
}

// appendEscaped appends s escaped as the text format wants: a backslash and a line feed
// in HELP text and label values, a double quote in label values too.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// goSamples are the runtime/metrics the go_* metrics are computed from.
var goSamples = [...]string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/frees:objects",
	"/gc/heap/tiny/allocs:objects",
	"/gc/heap/objects:objects",
	"/gc/heap/goal:bytes",
	"/gc/gogc:percent",
	"/gc/gomemlimit:bytes",
	"/sched/gomaxprocs:threads",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mspan/free:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/metadata/mcache/free:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/profiling/buckets:bytes",
	"/memory/classes/other:bytes",
}

// writeGoMetrics writes the Go runtime's metrics, with the names, types and help texts
// the Prometheus Go client's default Go collector gives them, so that dashboards made
// for Go services work.
func writeGoMetrics(e *expo) {
	samples := make([]metrics.Sample, len(goSamples))
	for i, name := range goSamples {
		samples[i].Name = name
	}
	metrics.Read(samples)
	rm := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			rm[s.Name] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			rm[s.Name] = s.Value.Float64()
		} // a metric this Go does not have reads as 0
	}
	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	threads, _ := runtime.ThreadCreateProfile(nil)

	e.header("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", "summary")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		e.sample("go_gc_duration_seconds", "quantile", q, gc.PauseQuantiles[i].Seconds())
	}
	e.sample("go_gc_duration_seconds_sum", "", "", gc.PauseTotal.Seconds())
	e.sample("go_gc_duration_seconds_count", "", "", float64(gc.NumGC))
	e.one("go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.", "gauge", rm["/gc/gogc:percent"])
	e.one("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.", "gauge", rm["/gc/gomemlimit:bytes"])
	e.one("go_goroutines", "Number of goroutines that currently exist.", "gauge", float64(runtime.NumGoroutine()))
	e.header("go_info", "Information about the Go environment.", "gauge")
	e.sample("go_info", "version", runtime.Version(), 1)

	heapObjects := rm["/memory/classes/heap/objects:bytes"]
	heapInuse := heapObjects + rm["/memory/classes/heap/unused:bytes"]
	heapIdle := rm["/memory/classes/heap/released:bytes"] + rm["/memory/classes/heap/free:bytes"]
	tiny := rm["/gc/heap/tiny/allocs:objects"]
	for _, m := range []struct {
		name, help, kind string
		v                float64
	}{
		{"alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", "gauge", heapObjects},
		{"alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", "counter", rm["/gc/heap/allocs:bytes"]},
		{"buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", "gauge", rm["/memory/classes/profiling/buckets:bytes"]},
		{"frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", "counter", rm["/gc/heap/frees:objects"] + tiny},
		{"gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", "gauge", rm["/memory/classes/metadata/other:bytes"]},
		{"heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", "gauge", heapObjects},
		{"heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", heapIdle},
		{"heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", "gauge", heapInuse},
		{"heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", "gauge", rm["/gc/heap/objects:objects"]},
		{"heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", "gauge", rm["/memory/classes/heap/released:bytes"]},
		{"heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", heapInuse + heapIdle},
		{"last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", "gauge", lastGC(gc.LastGC)},
		{"mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", "counter", rm["/gc/heap/allocs:objects"] + tiny},
		{"mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", "gauge", rm["/memory/classes/metadata/mcache/inuse:bytes"]},
		{"mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", "gauge", rm["/memory/classes/metadata/mcache/inuse:bytes"] + rm["/memory/classes/metadata/mcache/free:bytes"]},
		{"mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", "gauge", rm["/memory/classes/metadata/mspan/inuse:bytes"]},
		{"mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", "gauge", rm["/memory/classes/metadata/mspan/inuse:bytes"] + rm["/memory/classes/metadata/mspan/free:bytes"]},
		{"next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", "gauge", rm["/gc/heap/goal:bytes"]},
		{"other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", "gauge", rm["/memory/classes/other:bytes"]},
		{"stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", "gauge", rm["/memory/classes/heap/stacks:bytes"]},
		{"stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", "gauge", rm["/memory/classes/heap/stacks:bytes"] + rm["/memory/classes/os-stacks:bytes"]},
		{"sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", "gauge", rm["/memory/classes/total:bytes"]},
	} {
		e.one("go_memstats_"+m.name, m.help, m.kind, m.v)
	}
	e.one("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", "gauge", rm["/sched/gomaxprocs:threads"])
	e.one("go_threads", "Number of OS threads created.", "gauge", float64(threads))
}

// lastGC is the time of the last garbage collection in seconds since 1970; 0 before the
// first.
func lastGC(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// userHZ is the unit of the times in /proc/self/stat (USER_HZ), 100 on every Linux
// architecture Go supports.
const userHZ = 100

// writeProcessMetrics writes the process's metrics from /proc, with the names, types and
// help texts the Prometheus Go client's process collector gives them. A value that
// cannot be read (no /proc: not Linux) is left out.
func writeProcessMetrics(e *expo) {
	// /proc/self/stat: the fields after the command name (which may hold spaces), the
	// first of them the state, field 3 of proc(5).
	var stat []string
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			stat = strings.Fields(string(b[i+1:]))
		}
	}
	field := func(n int) (float64, bool) { // n as numbered in proc(5)
		if n-3 >= len(stat) {
			return 0, false
		}
		v, err := strconv.ParseFloat(stat[n-3], 64)
		return v, err == nil
	}
	if ut, ok := field(14); ok {
		if st, ok := field(15); ok {
			e.one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", (ut+st)/userHZ)
		}
	}
	limits := procLimits()
	if v, ok := limits["Max open files"]; ok {
		e.one("process_max_fds", "Maximum number of open file descriptors.", "gauge", v)
	}
	in, out, ok := procNetOctets()
	if ok {
		e.one("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", "counter", in)
		e.one("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", "counter", out)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.one("process_open_fds", "Number of open file descriptors.", "gauge", float64(len(fds)))
	}
	if rss, ok := field(24); ok {
		e.one("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", rss*float64(os.Getpagesize()))
	}
	if start, ok := field(22); ok {
		if boot, ok := procBootTime(); ok {
			e.one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", boot+start/userHZ)
		}
	}
	if vsize, ok := field(23); ok {
		e.one("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", vsize)
	}
	if v, ok := limits["Max address space"]; ok {
		e.one("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", "gauge", v)
	}
}

// procLimits reads the soft limits of /proc/self/limits by name; "unlimited" is the
// largest uint64, as the kernel's RLIM_INFINITY.
func procLimits() map[string]float64 {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// "Max open files            1024                 4096                 files":
		// a name of 25 columns, then the soft limit, the hard one and the unit.
		if len(line) <= 25 {
			continue
		}
		f := strings.Fields(line[25:])
		if len(f) == 0 {
			continue
		}
		name := strings.TrimSpace(line[:25])
		if f[0] == "unlimited" {
			out[name] = math.MaxUint64
		} else if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// procBootTime reads the system's boot time (btime of /proc/stat) in seconds since 1970.
func procBootTime() (float64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			t, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t, err == nil
		}
	}
	return 0, false
}

// procNetOctets reads the bytes received and sent over the network by the process's
// network namespace: InOctets and OutOctets of IpExt in /proc/self/net/netstat.
func procNetOctets() (in, out float64, ok bool) {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "IpExt:" || len(values) != len(names) || values[0] != "IpExt:" {
			continue
		}
		for j, n := range names {
			v, err := strconv.ParseFloat(values[j], 64)
			switch {
			case err != nil:
			case n == "InOctets":
				in, ok = v, true
			case n == "OutOctets":
				out = v
			}
		}
		return in, out, ok
	}
	return 0, 0, false
}
