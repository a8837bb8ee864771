package lint

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// timeout is the state of lock_timeout or statement_timeout in the migration session.
type timeout struct {
	set bool  // set to a non-zero value
	ms  int64 // the value in milliseconds; -1 when set to something we cannot evaluate
}

// session is what persists across statements on the runner's connection within one file.
type session struct {
	lockTimeout, statementTimeout timeout
	timeZone                      tzState
}

// tzState is what the linter knows of the session's TimeZone setting.
type tzState int

const (
	tzUnknown tzState = iota // neither the file nor the live database says
	tzUTC                    // a zone with a fixed offset of zero
	tzOther
)

// utcZones are the TimeZone values with a fixed UTC offset of zero, lower-cased.
var utcZones = map[string]bool{
	"utc": true, "etc/utc": true, "gmt": true, "etc/gmt": true, "uct": true, "etc/uct": true,
	"universal": true, "etc/universal": true, "zulu": true, "etc/zulu": true, "z": true,
	"gmt0": true, "etc/gmt0": true, "gmt+0": true, "gmt-0": true, "etc/gmt+0": true,
	"etc/gmt-0": true, "greenwich": true, "etc/greenwich": true, "+00": true, "+00:00": true, "0": true,
}

// classifyTimeZone classifies a TimeZone value.
func classifyTimeZone(v string) tzState {
	if utcZones[strings.ToLower(strings.TrimSpace(v))] {
		return tzUTC
	}
	return tzOther
}

// heldLock is a lock that blocks application traffic, held until the transaction ends.
type heldLock struct {
	table string
	mode  lockMode
	line  int
}

// txState is an open transaction.
type txState struct {
	id                   int // unique in the run
	explicit             bool
	line                 int
	localLock, localStmt *timeout
	localTZ              *tzState
	held                 []heldLock
}

// engine replays files statement by statement, running the rules before applying each
// statement to the catalog.
type engine struct {
	opts      Options
	cfg       *Config
	rules     []*Rule
	severity  map[string]Severity
	cat       *Catalog
	result    *Result
	fileOrder map[string]int

	file    *parsedFile
	fileIdx int
	sess    session
	tx      *txState
	once    map[string]bool       // per-file "reported already" marks
	groups  map[groupKey]*Finding // grouped findings of the current file
	// findings are the findings so far, in the order they were reported.
	findings []*Finding
	txSeq    int            // numbers the transactions of the run, for grouping
	views    map[string]int // views the current file creates: key -> statement index
	stmtIdx  int            // index of the current statement in the file
}

func newEngine(opts Options) *engine {
	e := &engine{
		opts:      opts,
		cfg:       &opts.Config,
		severity:  map[string]Severity{},
		result:    &Result{},
		fileOrder: map[string]int{},
		once:      map[string]bool{},
		groups:    map[groupKey]*Finding{},
	}
	if opts.Catalog != nil {
		e.cat = opts.Catalog.clone()
	} else {
		e.cat = NewCatalog()
	}
	for _, r := range registry {
		sev := e.cfg.severityFor(r)
		if sev == SeverityOff {
			continue
		}
		e.severity[r.ID] = sev
		e.rules = append(e.rules, r)
	}
	return e
}

// runFile replays one file, parsing it as it goes. It returns the file's syntax error,
// if any; the statements before it have been analysed.
func (e *engine) runFile(idx int, f *parsedFile) error {
	e.file, e.fileIdx = f, idx
	e.sess = session{timeZone: e.cat.timeZone}
	e.tx = nil
	clear(e.once)
	clear(e.groups)
	e.views = f.views
	mode := f.mode
	if e.cfg.Transaction == "none" && f.mode == txFile {
		mode = txNone
	}
	first, changeset := true, -1
	skipped := len(e.result.Coverage.Skipped)
	err := f.statements(func(st *statement) {
		if first && mode == txFile && !f.explicitTx && len(f.changesets) == 0 {
			e.tx = e.newTx(false, st.line)
		}
		first = false
		// Liquibase runs each changeset of a formatted SQL file in a transaction of its own
		// (or none, with runInTransaction:false), on one session.
		if k := f.changesetAt(st.start); k != changeset && k >= 0 {
			changeset, e.tx = k, nil
			if mode == txFile && !f.changesets[k].noTx {
				e.tx = e.newTx(false, st.line)
			}
		}
		e.stmtIdx = st.seg
		e.result.Coverage.Statements++
		e.runStatement(st)
	})
	e.closeGroups()
	// psql's own lines, among the file's other skipped parts in line order.
	for _, mc := range f.metaCommands {
		e.result.Coverage.Skipped = append(e.result.Coverage.Skipped, Skipped{File: f.name, Line: mc.line,
			Reason: "psql meta-command " + metaName(mc.text) + ": run by psql, not the server"})
	}
	for _, line := range f.openCopies {
		e.result.Coverage.Skipped = append(e.result.Coverage.Skipped, Skipped{File: f.name, Line: line,
			Reason: `COPY ... FROM stdin without a closing \. line: the rest of the file is its data`})
	}
	if len(f.metaCommands) > 0 || len(f.openCopies) > 0 {
		slices.SortStableFunc(e.result.Coverage.Skipped[skipped:], func(a, b Skipped) int { return a.Line - b.Line })
	}
	return err
}

// metaName is the name of a psql meta-command (\connect) from its line.
func metaName(line string) string {
	if i := strings.IndexAny(line, " \t\r"); i > 0 {
		return line[:i]
	}
	return line
}

func (e *engine) newTx(explicit bool, line int) *txState {
	e.txSeq++
	return &txState{id: e.txSeq, explicit: explicit, line: line}
}

func (e *engine) runStatement(st *statement) {
	n := st.node
	if n == nil {
		return
	}
	switch {
	case n.GetTransactionStmt() != nil:
		e.result.Coverage.Analysed++
		switch n.GetTransactionStmt().Kind {
		case pgtree.TransactionStmtKind_TRANS_STMT_BEGIN, pgtree.TransactionStmtKind_TRANS_STMT_START:
			if e.tx == nil {
				e.tx = e.newTx(true, st.line)
			}
		case pgtree.TransactionStmtKind_TRANS_STMT_COMMIT, pgtree.TransactionStmtKind_TRANS_STMT_ROLLBACK,
			pgtree.TransactionStmtKind_TRANS_STMT_PREPARE:
			e.tx = nil
		}
		return
	case n.GetDoStmt() != nil:
		e.skip(st, "DO block: its body is not analysed")
		return
	case n.GetCallStmt() != nil:
		e.skip(st, "CALL: the procedure's body is not analysed")
		return
	case n.GetExecuteStmt() != nil:
		e.skip(st, "EXECUTE: the prepared statement is not analysed")
		return
	}
	e.result.Coverage.Analysed++
	if e.applySettings(n) {
		return
	}
	p := &pass{e: e, st: st, node: n, locks: e.statementLocks(n), cascade: e.cat.cascadeDependents(n)}
	for _, r := range e.rules {
		if !p.ignored(r) { // an ignored rule would only build findings to drop
			r.check(p, r)
		}
	}
	if e.tx != nil {
		for _, l := range p.locks {
			if l.mode.blocksTraffic() && !p.isNew(l.table) {
				e.tx.held = append(e.tx.held, heldLock{table: l.table, mode: l.mode, line: st.line})
			}
		}
	}
	at := ""
	if cs := n.GetCreateStmt(); cs != nil && cs.IfNotExists {
		at = fmt.Sprintf("%s:%d", e.file.name, st.line)
	}
	e.cat.apply(n, e.fileIdx, at)
	e.cat.dropDependents(p.cascade)
	if vs := n.GetViewStmt(); vs != nil {
		e.cat.recordView(relKey(vs.View), st.text)
	} else if ct := n.GetCreateTableAsStmt(); ct != nil && ct.Objtype == pgtree.ObjectType_OBJECT_MATVIEW && ct.Into != nil {
		e.cat.recordView(relKey(ct.Into.Rel), st.text)
	}
}

func (e *engine) skip(st *statement, reason string) {
	e.result.Coverage.Skipped = append(e.result.Coverage.Skipped, Skipped{File: e.file.name, Line: st.line, Reason: reason})
}

// applySettings tracks SET/RESET of the timeouts (and set_config). It returns true for
// statements that only change settings.
func (e *engine) applySettings(n *pgtree.Node) bool {
	if vs := n.GetVariableSetStmt(); vs != nil {
		if strings.EqualFold(vs.Name, "timezone") {
			e.setTimeZone(vs)
			return true
		}
		if vs.Kind == pgtree.VariableSetKind_VAR_RESET_ALL {
			e.sess.timeZone = e.cat.timeZone
		}
		switch vs.Kind {
		case pgtree.VariableSetKind_VAR_RESET_ALL:
			e.setTimeout("lock_timeout", timeout{}, vs.IsLocal)
			e.setTimeout("statement_timeout", timeout{}, vs.IsLocal)
		case pgtree.VariableSetKind_VAR_SET_DEFAULT, pgtree.VariableSetKind_VAR_RESET:
			e.setTimeout(vs.Name, timeout{}, vs.IsLocal)
		case pgtree.VariableSetKind_VAR_SET_VALUE:
			if len(vs.Args) > 0 {
				e.setTimeout(vs.Name, constTimeout(vs.Args[0]), vs.IsLocal)
			}
		}
		return true
	}
	sel := n.GetSelectStmt()
	if sel == nil || len(sel.FromClause) > 0 {
		return false
	}
	found := false
	for _, t := range sel.TargetList {
		fc := t.GetResTarget().GetVal().GetFuncCall()
		if fc == nil {
			continue
		}
		names := nameList(fc.Funcname)
		if len(names) == 0 || !strings.EqualFold(names[len(names)-1], "set_config") || len(fc.Args) != 3 {
			continue
		}
		name := fc.Args[0].GetAConst().GetSval().GetSval()
		local := false
		if b := fc.Args[2].GetAConst().GetBoolval(); b != nil {
			local = b.Boolval
		}
		e.setTimeout(name, constTimeout(fc.Args[1]), local)
		found = true
	}
	return found
}

// setTimeZone tracks SET [LOCAL] timezone / SET TIME ZONE.
func (e *engine) setTimeZone(vs *pgtree.VariableSetStmt) {
	tz := e.cat.timeZone // RESET and DEFAULT: the database's setting
	if vs.Kind == pgtree.VariableSetKind_VAR_SET_VALUE && len(vs.Args) > 0 {
		c := vs.Args[0].GetAConst()
		switch {
		case c == nil:
			tz = tzOther // an INTERVAL offset
		case c.GetSval() != nil:
			tz = classifyTimeZone(c.GetSval().Sval)
		case c.GetIval() != nil:
			tz = classifyTimeZone(strconv.Itoa(int(c.GetIval().Ival)))
		case c.GetFval() != nil:
			tz = classifyTimeZone(strings.TrimRight(strings.TrimRight(c.GetFval().Fval, "0"), "."))
		default:
			tz = tzOther
		}
	} else if vs.Kind == pgtree.VariableSetKind_VAR_SET_CURRENT {
		tz = tzUnknown
	}
	if vs.IsLocal {
		if e.tx != nil {
			e.tx.localTZ = &tz
		}
		return
	}
	e.sess.timeZone = tz
}

// timeZoneUTC returns what is known of the TimeZone in effect.
func (e *engine) timeZoneUTC() tzState {
	if e.tx != nil && e.tx.localTZ != nil {
		return *e.tx.localTZ
	}
	return e.sess.timeZone
}

func (e *engine) setTimeout(name string, t timeout, local bool) {
	var target *timeout
	switch strings.ToLower(name) {
	case "lock_timeout":
		if local {
			if e.tx == nil {
				return // SET LOCAL outside a transaction has no effect
			}
			e.tx.localLock = &t
			return
		}
		target = &e.sess.lockTimeout
	case "statement_timeout":
		if local {
			if e.tx == nil {
				return
			}
			e.tx.localStmt = &t
			return
		}
		target = &e.sess.statementTimeout
	default:
		return
	}
	*target = t
}

// constTimeout evaluates a timeout setting: a number of milliseconds or a string with a unit.
func constTimeout(n *pgtree.Node) timeout {
	c := n.GetAConst()
	if c == nil {
		return timeout{set: true, ms: -1}
	}
	if iv := c.GetIval(); iv != nil {
		return timeout{set: iv.Ival != 0, ms: int64(iv.Ival)}
	}
	if c.GetIval() == nil && c.GetSval() == nil && c.GetFval() == nil && !c.Isnull {
		return timeout{} // a constant without a value: zero
	}
	var s string
	switch {
	case c.GetSval() != nil:
		s = c.GetSval().Sval
	case c.GetFval() != nil:
		s = c.GetFval().Fval
	default:
		return timeout{set: true, ms: -1}
	}
	ms, ok := parseDurationMS(s)
	if !ok {
		return timeout{set: true, ms: -1}
	}
	return timeout{set: ms != 0, ms: ms}
}

// parseDurationMS parses PostgreSQL's time setting syntax ("500", "5s", "1min", "2 h").
func parseDurationMS(s string) (int64, bool) {
	s = strings.TrimSpace(strings.ToLower(s))
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' && r != '-' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, false
	}
	mult := map[string]float64{"": 1, "us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
	m, ok := mult[unit]
	if !ok {
		return 0, false
	}
	return int64(v * m), true
}

// lockTimeout returns the lock_timeout in effect.
func (e *engine) lockTimeout() timeout {
	if e.tx != nil && e.tx.localLock != nil {
		return *e.tx.localLock
	}
	return e.sess.lockTimeout
}

// statementTimeout returns the statement_timeout in effect.
func (e *engine) statementTimeout() timeout {
	if e.tx != nil && e.tx.localStmt != nil {
		return *e.tx.localStmt
	}
	return e.sess.statementTimeout
}
