package lint

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// LoadSources reads migration files in the order a runner applies them. Each path is a
// file, a directory (its .sql files, recursively, ordered by name with numbers compared
// numerically, and only the "up" half of up/down pairs), or "-" for stdin.
func LoadSources(paths []string, stdin io.Reader) ([]Source, error) {
	var (
		out []Source
		r   fileReader
	)
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
			sql, err := r.read(p, false)
			if err != nil {
				return nil, fmt.Errorf("read migration: %w", err)
			}
			out = append(out, Source{Name: p, SQL: sql})
			continue
		}
		files, err := migrationFiles(p)
		if err != nil {
			return nil, err
		}
		out = slices.Grow(out, len(files))
		for _, f := range files {
			sql, err := r.read(f.path, f.regular)
			if err != nil {
				return nil, fmt.Errorf("read migration: %w", err)
			}
			out = append(out, Source{Name: f.path, SQL: sql})
		}
	}
	return out, nil
}

// fileReader reads files through one buffer that it reuses, so that each file's content
// is copied once, into its string.
type fileReader struct{ buf []byte }

// read returns the content of the file at path. regular says that path is known to be a
// regular file (found by the directory walk): it is then opened non-blocking, which spares
// the os package the four fcntl calls it otherwise makes to try, and fail, to add the file
// to the network poller (on Linux, two thirds of a small file's system calls). Regular
// files ignore the flag; a path given by the user may be a pipe, and is opened as usual.
func (r *fileReader) read(path string, regular bool) (string, error) {
	flag := os.O_RDONLY
	if regular {
		flag |= syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if r.buf == nil {
		// Most migrations fit; a larger file grows the buffer. (A large buffer would cost
		// more to zero than small files save.)
		r.buf = make([]byte, 0, 16<<10)
	}
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	r.buf = b
	return string(b), nil
}

// migrationFile is a file the directory walk found.
type migrationFile struct {
	path    string
	regular bool // a regular file, not a symbolic link or a special file
}

// migrationFiles lists the up migrations under dir in application order.
func migrationFiles(dir string) ([]migrationFile, error) {
	var all []migrationFile
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
			all = append(all, migrationFile{path: path, regular: d.Type().IsRegular()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read migrations in %s: %w", dir, err)
	}
	have := make(map[string]bool, len(all))
	for _, f := range all {
		have[f.path] = true
	}
	up := all[:0]
	for _, f := range all {
		if u, ok := upCounterpart(f.path); ok && have[u] {
			continue
		}
		up = append(up, f)
	}
	sort.Slice(up, func(i, j int) bool { return naturalLess(up[i].path, up[j].path) })
	return up, nil
}

// upCounterpart returns the name the "up" file of a down migration would have:
// 1_x.down.sql -> 1_x.up.sql, dir/down.sql -> dir/up.sql, U1__x.sql -> V1__x.sql. The word
// "down", in any case, is recognised at the start of the file's name or after one of
// "._-", and before one of "._-"; the first such word is replaced.
func upCounterpart(path string) (string, bool) {
	dir, base := filepath.Split(path)
	if len(base) > 1 && (base[0] == 'U' || base[0] == 'u') && base[1] >= '0' && base[1] <= '9' && strings.Contains(base, "__") {
		return dir + "V" + base[1:], true
	}
	isSep := func(c byte) bool { return c == '.' || c == '_' || c == '-' }
	for i := 0; i+len("down") < len(base); i++ {
		if (i == 0 || isSep(base[i-1])) && strings.EqualFold(base[i:i+len("down")], "down") && isSep(base[i+len("down")]) {
			return dir + base[:i] + "up" + base[i+len("down"):], true
		}
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
