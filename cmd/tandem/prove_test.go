package main

import (
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/cli"
)

// TestProveFlagRanges checks that impossible values exit 2 with the range, before
// anything starts.
func TestProveFlagRanges(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--instances", "0"}, "--instances 0: want 1 to 20"},
		{[]string{"--instances", "21"}, "want 1 to 20"},
		{[]string{"--rate", "0"}, "--rate 0: want 1 to 5000"},
		{[]string{"--duration", "0s"}, "--duration 0s: want 1s to 1h0m0s"},
		{[]string{"--rows", "0"}, "--rows 0: want 1 to"},
		{[]string{"--stream-share", "1.5"}, "want 0 to 1"},
		{[]string{"--rollout-at", "90s", "--duration", "60s"}, "--rollout-at 1m30s"},
		{[]string{"--from", "v7"}, `--from "v7": the example's releases are v1, v2, v3`},
		{[]string{"--from", "v3", "--upgrade"}, "newest release"},
		{[]string{"--from", "v2", "--upgrade=v1"}, "not newer than --from v2"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := tandem(t, append([]string{"prove"}, tc.args...)...)
			if code != cli.ExitUsage || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, %q; want 2 and %q", code, out, tc.want)
			}
		})
	}
}
