package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procID identifies a process across PID reuse: its PID, when it started (in clock
// ticks after boot) and the boot it started in. A recorded process whose PID now
// belongs to another process is not alive, and is never signalled.
type procID struct {
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

// identify returns the identity of the running process pid.
func identify(pid int) procID {
	id := procID{PID: pid, Boot: bootID()}
	if _, start, ok := statOf(pid); ok {
		id.Start = start
	}
	return id
}

// alive reports whether the process runs, is not a zombie, and is the one recorded.
func (p procID) alive() bool {
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

// signal sends sig to the process if it is still the one recorded.
func (p procID) signal(sig syscall.Signal) {
	if p.alive() {
		_ = syscall.Kill(p.PID, sig)
	}
}

// instanceEnv names the environment variable that marks an instance's process with its
// backend directory and name, so that one started just before a crash, before its PID
// was recorded, is found again.
const instanceEnv = "TANDEM_LOCAL_INSTANCE"

// findMarked returns the process whose environment holds instanceEnv=mark, if any.
func findMarked(mark string) (procID, bool) {
	want := []byte(instanceEnv + "=" + mark + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !strings.Contains(string(env)+"\x00", string(want)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if id := identify(pid); id.alive() {
			return id, true
		}
	}
	return procID{}, false
}
