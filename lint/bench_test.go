package lint

import (
	"fmt"
	"strings"
	"testing"
)

// benchSources builds a realistic migration history: files that create tables, add columns
// and indexes, change types, add constraints, and backfill.
func benchSources(files int) ([]Source, int) {
	var srcs []Source
	stmts := 0
	for i := 0; i < files; i++ {
		var b strings.Builder
		t := fmt.Sprintf("t%d", i%10)
		if i < 10 {
			fmt.Fprintf(&b, "CREATE TABLE %s (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name varchar(50) NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());\n", t)
			stmts++
		}
		fmt.Fprintf(&b, "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\n")
		fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN c%d integer DEFAULT 0;\n", t, i)
		fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN r%d uuid DEFAULT gen_random_uuid();\n", t, i)
		fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN name TYPE varchar(%d);\n", t, 60+i)
		fmt.Fprintf(&b, "CREATE INDEX %s_c%d ON %s (c%d) WHERE c%d > 0;\n", t, i, t, i, i)
		fmt.Fprintf(&b, "ALTER TABLE %s ADD CONSTRAINT %s_c%d_check CHECK (c%d >= 0) NOT VALID;\n", t, t, i, i)
		fmt.Fprintf(&b, "ALTER TABLE %s VALIDATE CONSTRAINT %s_c%d_check;\n", t, t, i)
		fmt.Fprintf(&b, "UPDATE %s SET c%d = 1 WHERE id IN (SELECT id FROM %s WHERE c%d IS NULL LIMIT 1000);\n", t, i, t, i)
		fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN c%d SET NOT NULL;\n", t, i)
		fmt.Fprintf(&b, "COMMENT ON COLUMN %s.c%d IS 'counter %d';\n", t, i, i)
		fmt.Fprintf(&b, "ALTER TABLE %s RENAME COLUMN r%d TO u%d; -- tandem-lint-ignore: rename-column\n", t, i, i)
		stmts += 12
		srcs = append(srcs, Source{Name: fmt.Sprintf("%04d_change.sql", i), SQL: b.String()})
	}
	return srcs, stmts
}

// BenchmarkLintStatements measures single-threaded throughput in statements per second,
// parse to findings, over a 100-file migration history.
func BenchmarkLintStatements(b *testing.B) {
	srcs, stmts := benchSources(100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Lint(srcs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(stmts*b.N)/b.Elapsed().Seconds(), "stmts/s")
}
