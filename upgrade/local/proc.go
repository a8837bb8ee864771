package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tandem-pg/tandem/internal/process"
)

// instanceEnv names the environment variable that marks an instance's process with its
// backend directory and name, so that one started just before a crash, before its PID
// was recorded, is found again.
const instanceEnv = "TANDEM_LOCAL_INSTANCE"

// findMarked returns the process whose environment holds instanceEnv=mark, if any.
func findMarked(mark string) (process.ID, bool) {
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
		if id := process.Identify(pid); id.Alive() {
			return id, true
		}
	}
	return process.ID{}, false
}
