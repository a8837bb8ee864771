package lint

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestUpCounterpart(t *testing.T) {
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"m/1_x.down.sql", "m/1_x.up.sql", true},
		{"m/1_x.DOWN.sql", "m/1_x.up.sql", true},
		{"m/20240101_d/down.sql", "m/20240101_d/up.sql", true},
		{"m/down.sql", "m/up.sql", true},
		{"m/1-down-x.sql", "m/1-up-x.sql", true},
		{"m/1_down_then_down.sql", "m/1_up_then_down.sql", true},
		{"m/U3__x.sql", "m/V3__x.sql", true},
		{"m/u3__x.sql", "m/V3__x.sql", true},
		{"m/down/1.sql", "", false}, // the directory's name does not count
		{"m/1_x.up.sql", "", false},
		{"m/1_countdown.sql", "", false},
		{"m/1_downtime.sql", "", false},
		{"m/1_down", "", false},
		{"m/down", "", false},
		{"m/U3_x.sql", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := upCounterpart(filepath.FromSlash(tt.path))
		if ok != tt.ok || got != filepath.FromSlash(tt.want) {
			t.Errorf("upCounterpart(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

// TestUpCounterpartMatchesPattern checks the hand-written matcher against the regular
// expression it replaced, on every name built from a set of fragments.
func TestUpCounterpartMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(`(?i)(^|[._\-/])down([._\-])`)
	frags := []string{"", "down", "Down", "x", ".", "_", "-", "1", "up", "dow", "n"}
	var names []string
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		names = append(names, prefix)
		if depth == 0 {
			return
		}
		for _, f := range frags[1:] {
			build(prefix+f, depth-1)
		}
	}
	build("", 4)
	for _, base := range names {
		if len(base) > 1 && (base[0] == 'U' || base[0] == 'u') {
			continue // the Flyway rule, not the pattern
		}
		want, wantOK := "", false
		if loc := re.FindStringSubmatchIndex(base); loc != nil {
			want, wantOK = "d/"+base[:loc[3]]+"up"+base[loc[4]:], true
		}
		got, ok := upCounterpart("d/" + base)
		if ok != wantOK || got != want {
			t.Fatalf("upCounterpart(%q) = %q, %v; the pattern gives %q, %v", "d/"+base, got, ok, want, wantOK)
		}
	}
}

// TestLoadSourcesContent checks that every file's content is read whole: files larger
// than the read buffer, empty ones, a symbolic link, and a file named on its own.
func TestLoadSourcesContent(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("SELECT 1; -- a line of filler\n", 10000) // 300 kB, several buffers
	files := map[string]string{
		"1_big.sql":   big,
		"2_empty.sql": "",
		"3_small.sql": "SELECT 3;",
		"4_after.sql": "SELECT 4;",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(t.TempDir(), "linked.sql")
	if err := os.WriteFile(target, []byte("SELECT 5;"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "5_link.sql")); err != nil {
		t.Fatal(err)
	}
	files["5_link.sql"] = "SELECT 5;"

	srcs, err := LoadSources([]string{dir, filepath.Join(dir, "3_small.sql")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1_big.sql", "2_empty.sql", "3_small.sql", "4_after.sql", "5_link.sql", "3_small.sql"}
	if len(srcs) != len(want) {
		t.Fatalf("got %d sources, want %d", len(srcs), len(want))
	}
	for i, s := range srcs {
		name := filepath.Base(s.Name)
		if name != want[i] {
			t.Errorf("source %d is %s, want %s", i, name, want[i])
		}
		if s.SQL != files[name] {
			t.Errorf("%s: read %d bytes, want %d", name, len(s.SQL), len(files[name]))
		}
	}
}
