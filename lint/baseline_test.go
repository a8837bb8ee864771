package lint

import (
	"path/filepath"
	"testing"
)

// TestBaselineCountsEachEntryOnce: a baseline entry accepts one finding, so a second
// copy of an accepted statement is new.
func TestBaselineCountsEachEntryOnce(t *testing.T) {
	const opts = "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\n"
	old, err := LintString("m.sql", opts+"TRUNCATE a;", Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.json")
	if err := NewBaseline(old).Write(path); err != nil {
		t.Fatal(err)
	}
	b, err := ReadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		file, sql  string
		wantShown  int
		wantHidden int
	}{
		{"same", "m.sql", opts + "TRUNCATE a;", 0, 1},
		{"moved down", "m.sql", opts + "\n\n  TRUNCATE   a;", 0, 1},
		{"twice", "m.sql", opts + "TRUNCATE a;\nTRUNCATE a;", 1, 1},
		{"other table", "m.sql", opts + "TRUNCATE b;", 1, 0},
		{"other file", "n.sql", opts + "TRUNCATE a;", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString(tt.file, tt.sql, Options{})
			if err != nil {
				t.Fatal(err)
			}
			hidden := b.Apply(res)
			if len(res.Findings) != tt.wantShown || hidden != tt.wantHidden || res.Hidden != hidden {
				t.Errorf("shown %d, hidden %d (Result.Hidden %d); want %d and %d", len(res.Findings), hidden, res.Hidden, tt.wantShown, tt.wantHidden)
			}
		})
	}
}
