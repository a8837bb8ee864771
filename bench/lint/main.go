// Command lint measures the CPU time `tandem lint` spends per statement on real migration
// histories, against squawk (npm package squawk-cli) on the same files in the same run,
// and prints a Markdown table.
//
//	go run ./bench/lint -squawk $(npm root)/@squawk-cli/linux-x64/bin/squawk [-runs 15] [-base OLD_TANDEM] [-tandem NEW_TANDEM] [-tandem-lint NEW_TANDEM_LINT] [NAME=]DIR...
//
// Each DIR (named NAME in the table) is linted as `tandem lint DIR` and `tandem-lint DIR`
// (the lint-only binary) lint it; squawk is given the same files, in the
// same order (the ones tandem's loader picks: up halves only). A round runs every command
// once on a corpus, in an order that rotates from round to round, so that a burst of load
// on a shared machine favours none of them. The measure is the user+sys CPU time of the
// whole process (start-up included) from its rusage; the table gives medians over the
// rounds and the median of the per-round ratios to squawk.
//
// tandem and tandem-lint are built from this tree into a temporary directory (or given
// with -tandem and -tandem-lint, built before the measurement); -base adds another tandem
// binary (say, one built before a change). `tandem version` and `tandem-lint --version`,
// which do no work, show the start-ups alone.
// Every binary, squawk's included, is measured from a copy made at the start of the run, so
// that none runs from pages the page cache happens to hold in huge pages (see run).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tandem-pg/tandem/lint"
)

// tool is one command under measure.
type tool struct {
	name string
	cmd  func(dir string, files []string) []string
}

func main() {
	var (
		squawk  = flag.String("squawk", "", "the squawk binary (required), e.g. node_modules/@squawk-cli/linux-x64/bin/squawk")
		base    = flag.String("base", "", "another tandem binary to measure beside this tree's (optional)")
		runs    = flag.Int("runs", 15, "rounds per corpus (medians reported)")
		bin     = flag.String("tandem", "", "a tandem binary built from this tree (default: build one), so that the build can run before a measurement lock is taken")
		lintBin = flag.String("tandem-lint", "", "a tandem-lint binary built from this tree (default: build one)")
	)
	flag.Parse()
	if *squawk == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/lint -squawk BIN [-base TANDEM] [-tandem TANDEM] [-tandem-lint TANDEM_LINT] [-runs N] [NAME=]DIR...")
		os.Exit(2)
	}
	if err := run(*squawk, *base, *bin, *lintBin, *runs, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/lint:", err)
		os.Exit(1)
	}
}

func run(squawk, base, tandem, tandemLint string, runs int, dirs []string) error {
	tmp, err := os.MkdirTemp("", "bench-lint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, b := range []struct {
		bin *string
		pkg string
	}{{&tandem, "./cmd/tandem"}, {&tandemLint, "./cmd/tandem-lint"}} {
		if *b.bin != "" {
			continue
		}
		built := filepath.Join(tmp, "built-"+filepath.Base(b.pkg))
		build := exec.Command("go", "build", "-o", built, b.pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s (run from the module's root): %w", b.pkg, err)
		}
		*b.bin = built
	}
	// Every binary is measured from a fresh copy. How a binary's pages sit in the page cache
	// changes its start-up: one the Go linker has just written can be mapped with huge
	// pages (FilePmdMapped in /proc/PID/smaps) and ran `tandem lint` on fider's history
	// about 15% faster than a copy of the same file. Copies made in the same way put all
	// the binaries on the same footing.
	for _, bin := range []*string{&squawk, &base, &tandem, &tandemLint} {
		if *bin == "" {
			continue
		}
		c, err := copyBinary(*bin, tmp)
		if err != nil {
			return err
		}
		*bin = c
	}
	tools := []tool{
		{"squawk 2.66", func(_ string, files []string) []string { return append([]string{squawk}, files...) }},
		{"tandem lint", func(dir string, _ []string) []string { return []string{tandem, "lint", dir} }},
		{"tandem-lint", func(dir string, _ []string) []string { return []string{tandemLint, dir} }},
	}
	if base != "" {
		tools = append(tools, tool{"tandem lint (base)", func(dir string, _ []string) []string { return []string{base, "lint", dir} }})
	}
	// The start-up alone: a command that does no work.
	tools = append(tools,
		tool{"tandem version (start-up only)", func(string, []string) []string { return []string{tandem, "version"} }},
		tool{"tandem-lint --version (start-up only)", func(string, []string) []string { return []string{tandemLint, "--version"} }})

	fmt.Printf("| corpus | files | statements | command | CPU per run (ms) | µs per statement | vs squawk (median of the rounds' ratios) |\n")
	fmt.Printf("|---|---|---|---|---|---|---|\n")
	for _, arg := range dirs {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok {
			name, dir = filepath.Base(filepath.Clean(arg)), arg
		}
		srcs, err := lint.LoadSources([]string{dir}, nil)
		if err != nil {
			return err
		}
		files := make([]string, len(srcs))
		for i, s := range srcs {
			files[i] = s.Name
		}
		stmts, err := countStatements(tandem, dir)
		if err != nil {
			return err
		}
		cpu := make([][]time.Duration, len(tools)) // by tool, by round
		for r := 0; r < runs; r++ {
			for k := range tools {
				i := (k + r) % len(tools)
				d, err := cpuTime(tools[i].cmd(dir, files))
				if err != nil {
					return fmt.Errorf("%s on %s: %w", tools[i].name, dir, err)
				}
				cpu[i] = append(cpu[i], d)
			}
		}
		for i, t := range tools {
			ratios := make([]float64, runs)
			for r := range ratios {
				ratios[r] = float64(cpu[i][r]) / float64(cpu[0][r])
			}
			med := median(cpu[i])
			fmt.Printf("| %s | %d | %d | %s | %.0f | %.0f | %.2f× |\n", name, len(files), stmts, t.name,
				float64(med)/1e6, float64(med)/1e3/float64(stmts), medianF(ratios))
		}
	}
	return nil
}

// copyBinary copies the executable bin into dir, under a name of its own, and returns the
// copy's path.
func copyBinary(bin, dir string) (string, error) {
	// A bare name is looked up in PATH, as exec.Command does.
	bin, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("copy the binary to measure: %w", err)
	}
	in, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("copy the binary to measure: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, filepath.Base(bin)+"-")
	if err != nil {
		return "", fmt.Errorf("copy the binary to measure: %w", err)
	}
	_, err = io.Copy(out, in)
	if err = errors.Join(err, out.Chmod(0o755), out.Close()); err != nil {
		return "", fmt.Errorf("copy %s to measure it: %w", bin, err)
	}
	return out.Name(), nil
}

// countStatements asks tandem how many statements it found in dir.
func countStatements(tandem, dir string) (int, error) {
	out, err := exec.Command(tandem, "lint", "--format", "json", dir).Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return 0, fmt.Errorf("tandem lint %s: %w", dir, err)
	}
	var res struct {
		Coverage struct {
			Statements int `json:"statements"`
		} `json:"coverage"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("tandem lint %s: its JSON: %w", dir, err)
	}
	return res.Coverage.Statements, nil
}

// cpuTime runs argv with its output discarded and returns its user+sys time. Exit code 1
// (findings) is expected; a crash or a usage error is an error.
func cpuTime(argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return 0, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}
