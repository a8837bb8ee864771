package migrate

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	pgrollExamples = flag.String("pgroll-examples", "", "a directory of pgroll's examples (pgroll's repository, examples/): TestPgrollExamples applies them")
	pgrollSkip     = flag.String("pgroll-skip", "", "comma-separated example names TestPgrollExamples leaves out")
)

// TestPgrollExamples applies a directory of pgroll-format migrations, such as pgroll's
// own examples, file by file (start and complete each) in one database, and as one
// directory (tandem migrate --complete) in another, and compares the two schemas. It
// runs only when -pgroll-examples names the directory; pgroll's files are not part of
// this repository:
//
//	go test ./migrate -run TestPgrollExamples -args -pgroll-examples ~/pgroll/examples
func TestPgrollExamples(t *testing.T) {
	if *pgrollExamples == "" {
		t.Skip("no -pgroll-examples directory")
	}
	skip := strings.Split(*pgrollSkip, ",")
	dir := t.TempDir()
	entries, err := os.ReadDir(*pgrollExamples)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		name := strings.TrimSuffix(en.Name(), filepath.Ext(en.Name()))
		if en.IsDir() || slices.Contains(skip, name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(*pgrollExamples, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, en.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	migs, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	one := newEnv(t)
	for _, mig := range migs {
		if err := one.m.Start(ctx, mig); err != nil {
			t.Fatalf("file by file: start %s: %v", mig.Name, err)
		}
		if err := one.m.Complete(ctx); err != nil {
			t.Fatalf("file by file: complete %s: %v", mig.Name, err)
		}
	}
	all := newEnv(t)
	applied, err := all.m.Migrate(ctx, migs, true)
	if err != nil {
		t.Fatalf("as one directory: %v", err)
	}
	if len(applied) != len(migs) {
		t.Errorf("as one directory: applied %d of %d", len(applied), len(migs))
	}
	if a, b := one.catalog(), all.catalog(); a != b {
		t.Errorf("the schemas differ.\nfile by file:\n%s\n\nas one directory:\n%s", a, b)
	}
	t.Logf("%d migrations applied both ways", len(migs))
}
