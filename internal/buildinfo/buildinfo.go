// Package buildinfo tells which build of Tandem is running: its module version and the
// commit it was built from, as Go's build information records them.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Version and Commit, when set at link time, take the place of what Go's build information
// says; Go records no commit for a build from a git worktree (its .git is a file), so a
// release build from one sets them:
//
//	go build -ldflags "-X github.com/tandem-pg/tandem/internal/buildinfo.Commit=$(git rev-parse HEAD)" ./cmd/tandem
var (
	Version string
	Commit  string
)

// modulePath is Tandem's module.
const modulePath = "github.com/tandem-pg/tandem"

// Info describes a build of Tandem.
type Info struct {
	// Version is the module version: a release tag, a pseudo-version, or "(devel)"
	// for a build from a work tree that Go could not version.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from; "" when unknown (a build
	// with -buildvcs=false, or Tandem used as a library).
	Commit string `json:"commit,omitempty"`
	// CommitTime is the commit's time, RFC 3339; "" when unknown.
	CommitTime string `json:"commit_time,omitempty"`
	// Modified is true when the work tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// Read returns the running build's information. In a program that embeds Tandem's
// packages, the version is that of the Tandem module it depends on.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	info := fromBuildInfo(bi)
	if Version != "" {
		info.Version = Version
	}
	if Commit != "" {
		info.Commit = Commit
	}
	return info
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: "unknown", GoVersion: bi.GoVersion}
	if bi.Main.Path != modulePath {
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				if d.Replace != nil && d.Replace.Version != "" {
					d = d.Replace
				}
				info.Version = d.Version
				return info // the settings are the embedding program's
			}
		}
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.CommitTime = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the version and, when known, the commit's first 12 digits, with "+dirty"
// for a modified work tree: "v1.2.0 (commit 0123456789ab)".
func (i Info) String() string {
	if i.Commit == "" {
		return i.Version
	}
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s)", i.Version, c)
}
