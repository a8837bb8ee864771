package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A role is what a process on the machine does for the measured window of (f).
type role int

const (
	roleLoad       role = iota // the load's backends: the app's statements
	roleTandem                 // the server's other client backends: the migrator, fill workers, the watcher
	roleAutovacuum             // autovacuum workers
	roleBackground             // the postmaster and its background processes (checkpointer, walwriter, …)
	roleBench                  // this process: the load generator, and Tandem's Go side
	roleOther                  // the rest of the machine's busy time: other processes, interrupts
	roleIdle                   // the machine's idle time
	nRoles
)

var roleNames = [nRoles]string{"load backends", "Tandem's backends", "autovacuum workers", "background processes", "bench process (load generator)", "other (rest of machine)", "idle"}

// cpuSample is how often the account reads the server's processes: autovacuum workers
// and Tandem's connections come and go, and an exiting process's CPU since its last sample
// is lost.
const cpuSample = 200 * time.Millisecond

// cpuUse is the CPU time each role used over a window of wall time.
type cpuUse struct {
	wall  time.Duration
	cpus  int // the machine's CPUs
	role  [nRoles]time.Duration
	avPID int // autovacuum workers seen
	// runs are, for the load's backends and for the bench process, the times they were
	// put on a CPU (the backends' timeslices; the bench's context switches): a process
	// that waits more often runs more often for the same work.
	loadRuns, benchRuns int64
}

// share is role r's CPU time as a share of the machine's capacity over the window.
func (u cpuUse) share(r role) float64 {
	if u.wall <= 0 || u.cpus == 0 {
		return 0
	}
	return float64(u.role[r]) / float64(u.wall) / float64(u.cpus)
}

// perStatement is role r's CPU time per statement of n.
func (u cpuUse) perStatement(r role, n int64) time.Duration {
	return u.role[r] / time.Duration(max(n, 1))
}

// summary is a line of the window's shares and, for the app's statements (n), the CPU
// per statement of the roles that do the app's work.
func (u cpuUse) summary(n int64) string {
	var parts []string
	for r := range nRoles {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", roleNames[r], 100*u.share(r)))
	}
	return fmt.Sprintf("CPU of %d cores over %s: %s; %d autovacuum workers; per app statement: load backends %.1fµs, bench process %.1fµs, whole server %.1fµs; runs on a CPU per app statement: load backends %.2f, bench process %.2f",
		u.cpus, u.wall.Round(100*time.Millisecond), strings.Join(parts, ", "), u.avPID,
		us(u.perStatement(roleLoad, n)), us(u.perStatement(roleBench, n)), us(u.server()/time.Duration(max(n, 1))),
		float64(u.loadRuns)/float64(max(n, 1)), float64(u.benchRuns)/float64(max(n, 1)))
}

// server is the CPU time of all the server's processes.
func (u cpuUse) server() time.Duration {
	return u.role[roleLoad] + u.role[roleTandem] + u.role[roleAutovacuum] + u.role[roleBackground]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cpuAccount accounts for the CPU time of the server's processes by role over a window:
// it reads every child of the postmaster at the window's start, every cpuSample, and at
// its end, and sums each process's use since it was first seen (from its birth, for a
// process born in the window). The bench process and the machine's idle time are read at
// the start and the end.
type cpuAccount struct {
	postmaster int
	load       map[int]bool
	start      time.Time
	self0      time.Duration
	selfRuns0  int64
	busy0      time.Duration
	idle0      time.Duration
	mu         sync.Mutex
	procs      map[int]*procUse
	done       chan struct{}
	wg         sync.WaitGroup
}

// procUse is one server process's CPU over the window.
type procUse struct {
	role                role
	first, last         time.Duration
	firstRuns, lastRuns int64
}

// startCPUAccount begins an account; load are the pids of the load's backends, which also
// lead to the postmaster (their parent).
func startCPUAccount(load []int) (*cpuAccount, error) {
	if len(load) == 0 {
		return nil, fmt.Errorf("cpu account: no load backend to find the server by")
	}
	pm, err := parentPID(load[0])
	if err != nil {
		return nil, fmt.Errorf("cpu account: %w", err)
	}
	a := &cpuAccount{postmaster: pm, load: map[int]bool{}, procs: map[int]*procUse{}, done: make(chan struct{})}
	for _, p := range load {
		a.load[p] = true
	}
	a.start = time.Now()
	a.self0, a.selfRuns0 = selfCPU()
	a.busy0, a.idle0 = machineCPU()
	a.sample(true)
	a.wg.Go(func() {
		tick := time.NewTicker(cpuSample)
		defer tick.Stop()
		for {
			select {
			case <-a.done:
				return
			case <-tick.C:
				a.sample(false)
			}
		}
	})
	return a, nil
}

// sample reads the server's processes; at the window's start (first) a process's use so
// far is its baseline, later a new process is counted from its birth.
func (a *cpuAccount) sample(first bool) {
	pids := serverPIDs(a.postmaster)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, pid := range pids {
		cpu, runs, ok := procSched(pid)
		if !ok {
			continue // it exited meanwhile
		}
		p := a.procs[pid]
		if p == nil {
			p = &procUse{role: a.classify(pid)}
			if first {
				p.first, p.firstRuns = cpu, runs
			}
			a.procs[pid] = p
		}
		p.last, p.lastRuns = cpu, runs
	}
}

// classify tells a server process's role by its pid and its title.
func (a *cpuAccount) classify(pid int) role {
	if a.load[pid] {
		return roleLoad
	}
	if pid == a.postmaster {
		return roleBackground
	}
	title, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return roleOfTitle(string(title))
}

// roleOfTitle is the role of a server process that is not one of the load's backends,
// by its title (its /proc/PID/cmdline).
func roleOfTitle(title string) role {
	t := strings.TrimPrefix(strings.TrimRight(title, "\x00"), "postgres: ")
	switch {
	case strings.HasPrefix(t, "autovacuum worker"):
		return roleAutovacuum
	case strings.HasPrefix(t, "checkpointer"), strings.HasPrefix(t, "background writer"), strings.HasPrefix(t, "walwriter"),
		strings.HasPrefix(t, "autovacuum launcher"), strings.HasPrefix(t, "logical replication launcher"),
		strings.HasPrefix(t, "logger"), strings.HasPrefix(t, "archiver"), strings.HasPrefix(t, "walsender"), strings.HasPrefix(t, "startup"):
		return roleBackground
	}
	// Every other process is a client backend (or a parallel worker of one), and the load's
	// are known: the rest are Tandem's (the bench runs no other statement meanwhile).
	return roleTandem
}

// stop ends the account and returns the window's use.
func (a *cpuAccount) stop() cpuUse {
	close(a.done)
	a.wg.Wait()
	a.sample(false)
	u := cpuUse{wall: time.Since(a.start), cpus: cpuCount()}
	a.mu.Lock()
	for _, p := range a.procs {
		u.role[p.role] += p.last - p.first
		if p.role == roleLoad {
			u.loadRuns += p.lastRuns - p.firstRuns
		}
		if p.role == roleAutovacuum {
			u.avPID++
		}
	}
	a.mu.Unlock()
	self, selfRuns := selfCPU()
	u.role[roleBench], u.benchRuns = self-a.self0, selfRuns-a.selfRuns0
	busy, idle := machineCPU()
	u.role[roleIdle] = idle - a.idle0
	var accounted time.Duration
	for r := range roleOther {
		accounted += u.role[r]
	}
	// The machine's counters tick at 10ms: a small negative rest is their rounding.
	u.role[roleOther] = max(0, busy-a.busy0-accounted)
	return u
}

// serverPIDs are the postmaster's pid and its children's.
func serverPIDs(postmaster int) []int {
	pids := []int{postmaster}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", postmaster, postmaster))
	if err != nil {
		return pids
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// parentPID is the parent of process pid, from /proc/PID/stat.
func parentPID(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the parent of process %d: %w", pid, err)
	}
	// The fields after the command, which is in parentheses and may hold anything.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("read the parent of process %d: short /proc/%d/stat", pid, pid)
	}
	return strconv.Atoi(f[1])
}

// procSched is the CPU time process pid has used so far and the times it was put on a
// CPU (the first and third fields of /proc/PID/schedstat: a server process has one
// thread); ok is false when it cannot be read.
func procSched(pid int) (cpu time.Duration, runs int64, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return 0, 0, false
	}
	ns, err1 := strconv.ParseInt(f[0], 10, 64)
	runs, err2 := strconv.ParseInt(f[2], 10, 64)
	return time.Duration(ns), runs, err1 == nil && err2 == nil
}

// cpuTime is the CPU time the processes pids have used so far; a process that cannot be
// read counts 0.
func cpuTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		cpu, _, _ := procSched(pid)
		total += cpu
	}
	return total
}

// selfCPU is the CPU time of this process, all its threads, user and system, and its
// context switches, voluntary or not.
func selfCPU() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

// machineCPU is the machine's busy and idle CPU time so far, all CPUs, from /proc/stat
// (idle counts iowait).
func machineCPU() (busy, idle time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return parseCPULine(line)
}

// parseCPULine reads the busy and idle time of /proc/stat's first line, "cpu" and the
// machine's times in clock ticks.
func parseCPULine(line string) (busy, idle time.Duration) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal (guest time is within user).
	for i, v := range f[1:min(len(f), 9)] {
		ticks, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(ticks) * clockTick
		if i == 3 || i == 4 {
			idle += d
		} else {
			busy += d
		}
	}
	return busy, idle
}

// clockTick is the unit of /proc/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuCount is the number of CPUs /proc/stat lists.
func cpuCount() int {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

// cpuHeader heads the table of cpuRow's rows.
const cpuHeader = `CPU account of (f)'s windows, per role: median share of the machine's CPU capacity (median CPU time per app statement)

| (f) window (runs) | app tps | load backends | Tandem's backends | autovacuum | background | bench process (load generator) | other | idle | server CPU per app statement |
|---|---|---|---|---|---|---|---|---|---|`

// cpuRow is a row of the CPU account of the runs ls of one side of (f): per role, the
// median share of the machine's capacity and the median CPU time per app statement.
func cpuRow(name string, ls []loadResult) string {
	cell := func(f func(l loadResult) float64) float64 {
		var fs []float64
		for _, l := range ls {
			fs = append(fs, f(l))
		}
		return medianF(fs)
	}
	out := fmt.Sprintf("| %s (%d) | %.0f/s |", name, len(ls), cell(func(l loadResult) float64 { return l.tps }))
	for r := range roleIdle + 1 {
		out += fmt.Sprintf(" %.0f%% (%.1fµs) |", 100*cell(func(l loadResult) float64 { return l.cpu.share(r) }),
			cell(func(l loadResult) float64 { return us(l.cpu.perStatement(r, l.ok+l.failed)) }))
	}
	return out + fmt.Sprintf(" %.1fµs |", cell(func(l loadResult) float64 { return us(l.cpu.server() / time.Duration(max(l.ok+l.failed, 1))) }))
}
