package lint

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// LoadSources reads migration files in the order a runner applies them. Each path is a
// file, a directory (its .sql files, recursively, ordered by name with numbers compared
// numerically, and only the "up" half of up/down pairs), or "-" for stdin.
func LoadSources(paths []string, stdin io.Reader) ([]Source, error) {
	var out []Source
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			out = append(out, Source{Name: "<stdin>", SQL: string(b)})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		if !st.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("read migration: %w", err)
			}
			out = append(out, Source{Name: p, SQL: string(b)})
			continue
		}
		files, err := migrationFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read migration: %w", err)
			}
			out = append(out, Source{Name: f, SQL: string(b)})
		}
	}
	return out, nil
}

// migrationFiles lists the up migrations under dir in application order.
func migrationFiles(dir string) ([]string, error) {
	var all []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.EqualFold(filepath.Ext(path), ".sql") {
			all = append(all, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read migrations in %s: %w", dir, err)
	}
	have := make(map[string]bool, len(all))
	for _, f := range all {
		have[f] = true
	}
	var up []string
	for _, f := range all {
		if u, ok := upCounterpart(f); ok && have[u] {
			continue
		}
		up = append(up, f)
	}
	sort.Slice(up, func(i, j int) bool { return naturalLess(up[i], up[j]) })
	return up, nil
}

var downWord = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)(^|[._\-/])down([._\-])`) })

// upCounterpart returns the name the "up" file of a down migration would have:
// 1_x.down.sql -> 1_x.up.sql, dir/down.sql -> dir/up.sql, U1__x.sql -> V1__x.sql.
func upCounterpart(path string) (string, bool) {
	dir, base := filepath.Split(path)
	if len(base) > 1 && (base[0] == 'U' || base[0] == 'u') && base[1] >= '0' && base[1] <= '9' && strings.Contains(base, "__") {
		return dir + "V" + base[1:], true
	}
	if loc := downWord().FindStringSubmatchIndex(base); loc != nil {
		start, end := loc[3], loc[4]
		return dir + base[:start] + "up" + base[end:], true
	}
	return "", false
}

// naturalLess compares strings with runs of digits compared as numbers, so that
// V2__x.sql sorts before V10__y.sql.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
