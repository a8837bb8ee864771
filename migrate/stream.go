package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/tandem-pg/tandem/lint"
)

// Stream kinds.
const (
	// StreamPgroll is a stream of migrations in pgroll's format, expanded and contracted
	// by the engine.
	StreamPgroll = "pgroll"
	// StreamSQL is a stream of plain SQL files: pre-deploy files run at expand, before
	// the pgroll streams' migrations; post-deploy files run at contract, once the old
	// version is gone.
	StreamSQL = "sql"
)

// Phases of a plain-SQL stream's files.
const (
	PhasePre  = "pre-deploy"
	PhasePost = "post-deploy"
)

// Stream is one migration history of a release: a plugin's migrations, the core's, or a
// directory of plain SQL. Several streams are applied as one expand/contract step (see
// Migrator.ExpandStreams).
type Stream struct {
	// Name names the stream in the state schema and in needs ("core", "reviews"):
	// lower-case letters, digits, '_' and '-'.
	Name string
	// Kind is StreamPgroll or StreamSQL.
	Kind string
	// After are the streams whose pending migrations apply before this one's.
	After []string
	// PlainNames records the stream's migrations under their own names rather than as
	// "<stream>/<name>": the history that `tandem migrate DIR` (one implicit stream)
	// made. At most one stream of a set may have it.
	PlainNames bool
	// Migrations are a pgroll stream's migrations, in order.
	Migrations []*Migration
	// Pre and Post are a plain-SQL stream's pre-deploy and post-deploy files, in order.
	Pre, Post []*SQLFile
}

// Need says that a migration needs migration Migration of stream Stream applied first
// (that one or a later one: a stream's history is linear). A pgroll file writes it in its
// "needs" list and an SQL file in a comment, both as "<stream>/<migration>".
type Need struct {
	Stream    string
	Migration string
}

func (n Need) String() string { return n.Stream + "/" + n.Migration }

var streamNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`) })

// ValidStreamName reports whether name can name a stream.
func ValidStreamName(name string) bool { return streamNameRE().MatchString(name) }

// ParseNeed parses "<stream>/<migration>".
func ParseNeed(s string) (Need, error) {
	stream, mig, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || !ValidStreamName(stream) || !nameRE().MatchString(mig) {
		return Need{}, fmt.Errorf("%q is not <stream>/<migration> (e.g. core/0002_add_title)", s)
	}
	return Need{Stream: stream, Migration: mig}, nil
}

// recordedName is the name under which stream s records migration name.
func (s *Stream) recordedName(name string) string {
	if s.PlainNames || s.Name == "" {
		return name
	}
	return s.Name + "/" + name
}

// qualified returns a copy of mig named as s records it.
func (s *Stream) qualified(mig *Migration) *Migration {
	c := *mig
	c.Name = s.recordedName(mig.Name)
	return &c
}

// parseRecorded parses a recorded migration's definition. A stream's migration is
// recorded as "<stream>/<name>", which is no file's name: it is parsed under its own
// name and given the recorded one back.
func parseRecorded(rec *record) (*Migration, error) {
	def := rec.Definition
	own := rec.Name
	if i := strings.LastIndexByte(rec.Name, '/'); i >= 0 {
		own = rec.Name[i+1:]
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(def, &doc); err == nil {
			doc["name"], _ = json.Marshal(own)
			if b, err := json.Marshal(doc); err == nil {
				def = b
			}
		}
	}
	mig, err := Parse(rec.File, own, def)
	if err != nil {
		return nil, err
	}
	mig.Name = rec.Name
	return mig, nil
}

// SQLFile is one plain-SQL migration file.
type SQLFile struct {
	// Name is the file's name without ".sql": what needs and the state schema call it.
	Name string
	// File is the path it was read from.
	File string
	// SQL is what runs: its text with any down section (goose, dbmate) blanked.
	SQL string
	// Checksum is the SHA-256 of the file's whole text, in hex: a file applied with another checksum was
	// changed afterwards, and is refused.
	Checksum string
	// NoTransaction is set by a directive such as "-- no-transaction" (every directive
	// tandem lint knows): the file runs statement by statement, outside a transaction.
	NoTransaction bool
	// Needs are read from "-- tandem:needs <stream>/<migration>" comments.
	Needs []Need
}

// needsDirective is the comment that declares an SQL file's need.
const needsDirective = "-- tandem:needs "

// ReadSQLDir reads the .sql files of dir, ordered by name. A missing dir is an error;
// an empty one is not.
func ReadSQLDir(dir string) ([]*SQLFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &InputError{File: dir, Op: -1, Err: err}
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []*SQLFile
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &InputError{File: path, Op: -1, Err: err}
		}
		f, err := ParseSQLFile(path, string(data))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseSQLFile reads an SQL file's name, checksum, transaction mode and needs.
func ParseSQLFile(path, sql string) (*SQLFile, error) {
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if !nameRE().MatchString(name) || len(name) > maxIdentifier {
		return nil, &InputError{File: path, Op: -1, Field: "name", Err: fmt.Errorf("the file name %q must be 1-%d characters of letters, digits, '_', '-' or '.', then .sql", name, maxIdentifier)}
	}
	sum := sha256.Sum256([]byte(sql))
	f := &SQLFile{Name: name, File: path, SQL: sql, Checksum: hex.EncodeToString(sum[:])}
	mode := lint.FileMode(sql)
	// What runs is what the lint gate read: the up section only (a goose or dbmate
	// file's down section must never run during an upgrade).
	f.SQL = mode.Up
	if len(mode.Psql) > 0 {
		p := mode.Psql[0]
		return nil, &InputError{File: fmt.Sprintf("%s:%d", path, p.Line), Op: -1, Err: fmt.Errorf("%s: only psql runs this, and Tandem sends the file "+
			"to the server; remove psql's meta-commands, and load data with INSERT statements instead of COPY ... FROM stdin", p.What)}
	}
	if mode.ExplicitTx {
		return nil, &InputError{File: path, Op: -1, Err: fmt.Errorf("the file has BEGIN or COMMIT of its own: " +
			"Tandem runs each file in one transaction; remove them, or mark the file -- no-transaction to run it statement by statement")}
	}
	f.NoTransaction = mode.NoTransaction
	for i, line := range strings.Split(sql, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), needsDirective)
		if !ok {
			continue
		}
		for _, word := range strings.Fields(rest) {
			n, err := ParseNeed(word)
			if err != nil {
				return nil, &InputError{File: fmt.Sprintf("%s:%d", path, i+1), Op: -1, Field: "tandem:needs", Err: err}
			}
			f.Needs = append(f.Needs, n)
		}
	}
	return f, nil
}
