// Package process identifies processes across PID reuse, so that a process recorded by one
// tandem process is found, and signalled, by the next one only if it is still the same.
package process

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ID identifies a process across PID reuse: its PID, when it started (in clock
// ticks after boot) and the boot it started in. A recorded process whose PID now
// belongs to another process is not alive, and is never signalled.
type ID struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start,omitempty"`
	Boot  string `json:"boot,omitempty"`
}

// bootID is this boot's identity, or "" where the kernel does not tell.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// statOf returns the state letter and start time of pid from /proc/<pid>/stat.
func statOf(pid int) (state byte, start uint64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, false
	}
	// After the command's closing parenthesis: state is field 3, starttime field 22.
	fields := strings.Fields(s[i+2:])
	if len(fields) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], start, true
}

// Identify returns the identity of the running process pid.
func Identify(pid int) ID {
	id := ID{PID: pid, Boot: bootID()}
	if _, start, ok := statOf(pid); ok {
		id.Start = start
	}
	return id
}

// Alive reports whether the process runs, is not a zombie, and is the one recorded.
func (p ID) Alive() bool {
	if p.PID <= 0 || syscall.Kill(p.PID, 0) != nil {
		return false
	}
	state, start, ok := statOf(p.PID)
	if !ok {
		return false
	}
	if state == 'Z' {
		return false
	}
	if p.Boot != "" && p.Boot != bootID() {
		return false
	}
	return p.Start == 0 || p.Start == start
}

// Signal sends sig to the process if it is still the one recorded.
func (p ID) Signal(sig syscall.Signal) {
	if p.Alive() {
		_ = syscall.Kill(p.PID, sig)
	}
}

// Attr is how a child process starts: in its own session when detached (it outlives
// this process), else killed when this process dies.
func Attr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
