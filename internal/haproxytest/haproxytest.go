// Package haproxytest lets tests that need a real HAProxy say so: they are skipped on a
// developer's machine without one, and fail in CI (where CI is set), which must install
// it.
package haproxytest

import (
	"os"
	"testing"

	"github.com/tandem-pg/tandem/internal/haproxy"
)

// Require skips t when haproxy is not installed, or fails it when the environment
// variable CI is set.
func Require(t testing.TB) {
	t.Helper()
	if haproxy.Installed() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("haproxy is not installed (CI must install it: apt-get install -y haproxy)")
	}
	t.Skip("haproxy is not installed")
}
