package lint

import (
	"slices"
	"testing"
)

// TestForeignRuleNamesExist guards the mappings against typos in our rule IDs.
func TestForeignRuleNamesExist(t *testing.T) {
	for tool, m := range map[string]map[string][]string{"squawk": squawkRules, "atlas": atlasRules} {
		for name, ours := range m {
			for _, id := range ours {
				if _, ok := LookupRule(id); !ok {
					t.Errorf("%s %s maps to unknown rule %q", tool, name, id)
				}
			}
		}
	}
}

func TestForeignIgnores(t *testing.T) {
	const stmt = "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\n"
	tests := []struct {
		name      string
		sql       string
		noForeign bool
		want      []string // rules reported
	}{
		{name: "no comment", sql: stmt + "ALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore on the line before", sql: stmt + "-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN a;"},
		{name: "squawk-ignore with several rules", sql: stmt + "-- squawk-ignore prefer-robust-stmts, ban-drop-column\nALTER TABLE users DROP COLUMN a;"},
		{name: "squawk-ignore of another rule", sql: stmt + "-- squawk-ignore renaming-column\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore of a rule without counterpart", sql: stmt + "-- squawk-ignore prefer-bigint-over-int\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore-file", sql: "-- squawk-ignore-file ban-drop-column\n" + stmt + "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;"},
		{name: "squawk-ignore-file without rules", sql: "-- squawk-ignore-file\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint", sql: stmt + "-- atlas:nolint\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint analyzer", sql: stmt + "/*atlas:nolint destructive*/\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint check code", sql: stmt + "--atlas:nolint DS103\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint other code", sql: stmt + "--atlas:nolint BC102\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "atlas:nolint covers one statement", sql: stmt + "-- atlas:nolint\nALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;", want: []string{"drop-column"}},
		{name: "atlas file directive", sql: "-- atlas:nolint\n\n" + stmt + "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users RENAME COLUMN b TO c;"},
		{name: "atlas file directive with an analyzer", sql: "-- atlas:nolint destructive\n\n" + stmt + "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;\nALTER TABLE users RENAME COLUMN c TO d;", want: []string{"rename-column"}},
		{name: "atlas file directive with check codes, after a comment", sql: "-- Drop the legacy columns.\n--atlas:nolint DS103 BC102\n\n" + stmt + "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users RENAME COLUMN c TO d;\nDROP TABLE legacy;", want: []string{"drop-table"}},
		{name: "atlas file directive, CRLF", sql: "-- atlas:nolint destructive\r\n\r\n" + stmt + "ALTER TABLE users DROP COLUMN a;\r\nALTER TABLE users DROP COLUMN b;"},
		{name: "atlas header without an empty line covers the first statement", sql: "-- atlas:nolint\n" + stmt + "ALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "atlas directive after a blank first line is no file directive", sql: "\n-- atlas:nolint\n\n" + stmt + "ALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "atlas directive lower in the file is no file directive", sql: stmt + "\n-- atlas:nolint\n\nALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;", want: []string{"drop-column"}},
		{name: "atlas file directive turned off", noForeign: true, sql: "-- atlas:nolint\n\n" + stmt + "ALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "atlas:nolint MF103", sql: stmt + "-- atlas:nolint MF103\nALTER TABLE users ADD COLUMN x int NOT NULL;"},
		{name: "atlas:nolint data_depend", sql: stmt + "-- atlas:nolint data_depend\nALTER TABLE users ADD COLUMN x int NOT NULL;"},
		{name: "atlas:nolint PG101", sql: stmt + "-- atlas:nolint PG101\nCREATE INDEX users_a ON users (a);"},
		{name: "atlas:nolint PG103", sql: "-- atlas:nolint PG103\nCREATE INDEX CONCURRENTLY users_a ON users (a);"},
		{name: "atlas:nolint MF104 has no counterpart", sql: stmt + "-- atlas:nolint MF104\nALTER TABLE users ALTER COLUMN a SET NOT NULL;", want: []string{"set-not-null-scan"}},
		{name: "turned off", noForeign: true, sql: stmt + "-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "turned off, ours still count", noForeign: true, sql: stmt + "-- tandem-lint-ignore: drop-column\nALTER TABLE users DROP COLUMN a;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("m.sql", tt.sql, Options{Config: Config{NoForeignIgnores: tt.noForeign}})
			if err != nil {
				t.Fatal(err)
			}
			got := ruleIDs(res.Findings)
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAtlasHeaderEnd(t *testing.T) {
	tests := []struct {
		src  string
		want int
	}{
		{"-- atlas:nolint\n\nDROP TABLE t;", 16},
		{"-- a\n-- atlas:nolint DS102\n\nDROP TABLE t;", 27},
		{"-- atlas:nolint\r\n\r\nDROP TABLE t;", 17},
		{"-- atlas:nolint\n", 16},
		{"-- atlas:nolint", 15},
		{"-- atlas:nolint\nDROP TABLE t;", -1},
		{"\n-- atlas:nolint\n\nDROP TABLE t;", -1},
		{"/* atlas:nolint */\n\nDROP TABLE t;", -1},
		{"DROP TABLE t;", -1},
		{"", -1},
	}
	for _, tt := range tests {
		if got := atlasHeaderEnd(tt.src); got != tt.want {
			t.Errorf("atlasHeaderEnd(%q) = %d, want %d", tt.src, got, tt.want)
		}
	}
}
