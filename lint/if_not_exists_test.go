package lint

import (
	"context"
	"strings"
	"testing"
)

// TestCreateTableIfNotExists: a table the linter has not seen, created with IF NOT
// EXISTS, may exist on the installation being upgraded. Later statements on it are
// judged as on an existing table, and the finding says why. A live catalog decides.
func TestCreateTableIfNotExists(t *testing.T) {
	const sql = "CREATE TABLE IF NOT EXISTS users (id int PRIMARY KEY, email text);\nCREATE INDEX users_email ON users (email);"
	tests := []struct {
		name    string
		sources []Source
		want    bool
	}{
		{"unseen table", []Source{{Name: "1.sql", SQL: sql}}, true},
		{"plain CREATE TABLE is new", []Source{{Name: "1.sql", SQL: strings.Replace(sql, " IF NOT EXISTS", "", 1)}}, false},
		{"created earlier in the run", []Source{{Name: "0.sql", SQL: "CREATE TABLE users (id int);"}, {Name: "1.sql", SQL: sql}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Lint(tt.sources, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var f *Finding
			for i := range res.Findings {
				if res.Findings[i].Rule == "index-not-concurrent" {
					f = &res.Findings[i]
				}
			}
			if (f != nil) != tt.want {
				t.Fatalf("index-not-concurrent fired = %v, want %v", f != nil, tt.want)
			}
			if f != nil && len(tt.sources) == 1 && !strings.Contains(f.Message, "IF NOT EXISTS at 1.sql:1") {
				t.Errorf("finding does not say the table may exist: %s", f.Message)
			}
		})
	}
}

// TestCreateTableIfNotExistsLive: the live catalog decides whether the table exists.
func TestCreateTableIfNotExistsLive(t *testing.T) {
	ctx := context.Background()
	url, conn := liveDB(t)
	if _, err := conn.Exec(ctx, "CREATE TABLE users (id int PRIMARY KEY, email text)"); err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table string
		want  bool
	}{{"users", true}, {"accounts", false}} {
		sql := "CREATE TABLE IF NOT EXISTS " + tc.table + " (id int PRIMARY KEY, email text);\nCREATE INDEX ON " + tc.table + " (email);"
		res, err := LintString("1.sql", sql, Options{Catalog: cat})
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, f := range res.Findings {
			if f.Rule == "index-not-concurrent" {
				got = true
				if strings.Contains(f.Message, "may exist already") {
					t.Errorf("the live catalog knows, yet the finding hedges: %s", f.Message)
				}
			}
		}
		if got != tc.want {
			t.Errorf("%s: index-not-concurrent fired = %v, want %v", tc.table, got, tc.want)
		}
	}
}
