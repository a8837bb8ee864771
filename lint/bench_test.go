package lint

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	cpu := startCPU(b)
	for i := 0; i < b.N; i++ {
		if _, err := Lint(srcs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(stmts * b.N)
}

// cpuClock reports a benchmark's throughput per second of wall time and per second of the
// process's CPU time (user+sys, garbage collector included), which a shared machine's load
// does not distort.
type cpuClock struct {
	b     *testing.B
	start time.Duration
}

// startCPU resets the benchmark's timer and starts the CPU clock.
func startCPU(b *testing.B) cpuClock {
	b.ResetTimer()
	return cpuClock{b: b, start: processCPU(b)}
}

// report records stmts statements as stmts/s and stmts/CPU-s.
func (c cpuClock) report(stmts int) {
	used := processCPU(c.b) - c.start
	c.b.ReportMetric(float64(stmts)/c.b.Elapsed().Seconds(), "stmts/s")
	if used > 0 {
		c.b.ReportMetric(float64(stmts)/used.Seconds(), "stmts/CPU-s")
	}
}

// processCPU returns the user+sys time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchCorpus = flag.String("lint.corpus", "", "BenchmarkLintCorpus: a directory of migrations (a real history) to lint")

// BenchmarkLintCorpus lints a real migration history given with -lint.corpus DIR, loaded
// once, as tandem lint DIR would: statements per second, parse to findings, single-threaded.
func BenchmarkLintCorpus(b *testing.B) {
	if *benchCorpus == "" {
		b.Skip("run with -lint.corpus DIR (a directory of migrations)")
	}
	srcs, err := LoadSources([]string{*benchCorpus}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := startCPU(b)
	stmts := 0
	for i := 0; i < b.N; i++ {
		res, err := Lint(srcs, Options{})
		if _, unparsable := AsParseError(err); err != nil && !unparsable {
			b.Fatal(err)
		}
		stmts += res.Coverage.Statements
	}
	cpu.report(stmts)
}

var rssMB = flag.Int("lint.rss", 0, "TestPeakRSS: lint a generated file of this many MB of INSERTs in a child process and check its peak RSS")

// TestPeakRSS generates a large file of INSERTs, lints it in a child process (this test
// binary, re-run) and checks that the child's peak resident set stays under 10 times the
// file's size: statements are parsed and analysed a chunk at a time. It runs only with
// -lint.rss N (N MB); the default test run skips it.
func TestPeakRSS(t *testing.T) {
	if path := os.Getenv("TANDEM_LINT_RSS_FILE"); path != "" {
		srcs, err := LoadSources([]string{path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Lint(srcs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("child: %d statements\n", res.Coverage.Statements)
		return
	}
	if *rssMB <= 0 {
		t.Skip("run with -lint.rss 50 to measure the peak RSS on a 50 MB file")
	}
	path := filepath.Join(t.TempDir(), "big.sql")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload jsonb, created_at timestamptz);")
	size := 0
	for i := 0; size < *rssMB<<20; i++ {
		n, _ := fmt.Fprintf(w, "INSERT INTO events (id, kind, payload, created_at) VALUES (%d, 'kind_%d', '{\"a\": %d, \"b\": \"some text\"}', '2024-01-01 00:00:00+00');\n", i, i%17, i)
		size += n
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSS$")
	cmd.Env = append(os.Environ(), "TANDEM_LINT_RSS_FILE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	ratio := float64(peak) / float64(size)
	t.Logf("input %.1f MB, peak RSS %.1f MB: %.2f× the input (%s)", float64(size)/1e6, float64(peak)/1e6, ratio, strings.TrimSpace(string(out)))
	if ratio > 10 {
		t.Errorf("peak RSS is %.2f× the input, want under 10×", ratio)
	}
}
