package upgrade

import (
	"strings"
	"testing"
)

// TestReleaseStreamErrors checks the streams: key's mistakes, named like the others.
func TestReleaseStreamErrors(t *testing.T) {
	streams := func(body string) func(string) string {
		return func(s string) string { return strings.Replace(s, "migrations: migrations\n", "streams:\n"+body, 1) }
	}
	tests := []struct {
		name    string
		edit    func(string) string
		wantKey string
		want    string
	}{
		{"both keys", func(s string) string { return s + "streams:\n  - name: core\n    dir: migrations\n" }, "streams", "both migrations: and streams:"},
		{"no stream name", streams("  - dir: migrations\n"), "streams[0].name", `"" is not a stream name`},
		{"pgroll without dir", streams("  - name: core\n"), "streams[0].dir", "a pgroll stream has a dir"},
		{"sql with dir", streams("  - name: ops\n    kind: sql\n    dir: migrations\n"), "streams[0].pre-deploy", "an sql stream has pre-deploy"},
		{"bad kind", streams("  - name: ops\n    kind: flyway\n    dir: migrations\n"), "streams[0].kind", `"flyway" is not a stream kind`},
		{"dir not found", streams("  - name: core\n    dir: migrations\n  - name: ops\n    kind: sql\n    pre-deploy: ops/pre\n"),
			"streams[1].pre-deploy", "not found"},
		{"neither key", func(s string) string { return strings.Replace(s, "migrations: migrations\n", "", 1) }, "migrations", "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRelease(t, tc.edit(validRelease))
			_, err := ReadRelease(path)
			re, ok := err.(*ReleaseError)
			if !ok {
				t.Fatalf("%v (%T), want a *ReleaseError", err, err)
			}
			if re.Key != tc.wantKey || !strings.Contains(err.Error(), tc.want) || re.Fix == "" || !strings.HasPrefix(err.Error(), path) {
				t.Errorf("%q (key %q); want key %q saying %q, with a fix", err, re.Key, tc.wantKey, tc.want)
			}
		})
	}
	// A valid one reads its streams.
	path := writeRelease(t, streams("  - name: core\n    dir: migrations\n    plain-names: true\n")(validRelease))
	rel, err := ReadRelease(path)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := rel.ReadStreams()
	if err != nil || len(ss) != 1 || ss[0].Name != "core" || ss[0].Kind != "pgroll" || !ss[0].PlainNames {
		t.Errorf("streams %+v, %v", ss, err)
	}
}
