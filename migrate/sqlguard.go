package migrate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// The guards below ask PostgreSQL's own parser (libpg_query) whether a piece of a
// migration file that Tandem writes into DDL is what it claims to be. They complement
// scanExpr, which rejects comments and unbalanced text the parser would accept inside a
// larger statement.

// parseExpr makes sure "SELECT (expr)" and "SELECT expr" are each one SELECT of one
// expression and nothing else (the second rejects a bare list such as "a, b", which the
// first reads as a row).
func parseExpr(expr string) error {
	for _, sql := range []string{"SELECT (" + expr + ")", "SELECT " + expr} {
		sel, err := parseOneSelect(sql)
		if err != nil {
			return err
		}
		if len(sel.TargetList) != 1 {
			return errors.New("not a single expression")
		}
	}
	return nil
}

// parseOneSelect parses sql, which must be one plain SELECT with a target list and no
// other clause, and returns it.
func parseOneSelect(sql string) (*pgtree.SelectStmt, error) {
	res, err := pgtree.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %s", parserMessage(err))
	}
	if len(res.Stmts) != 1 {
		return nil, errors.New("not a single expression")
	}
	sel := res.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || sel.Op != pgtree.SetOperation_SETOP_NONE || sel.IntoClause != nil || len(sel.FromClause) > 0 ||
		sel.WhereClause != nil || len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.WindowClause) > 0 ||
		len(sel.ValuesLists) > 0 || len(sel.SortClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil ||
		len(sel.LockingClause) > 0 || sel.WithClause != nil || len(sel.DistinctClause) > 0 {
		return nil, errors.New("not a single expression")
	}
	return sel, nil
}

// checkTypeName makes sure typ is one type name, as in "NULL::typ".
func checkTypeName(typ string) error {
	if err := scanExpr(typ); err != nil {
		return err
	}
	sel, err := parseOneSelect("SELECT NULL::" + typ)
	if err != nil {
		return errors.New("not a type name")
	}
	if len(sel.TargetList) != 1 {
		return errors.New("not a type name")
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || rt.Val.GetTypeCast() == nil || rt.Val.GetTypeCast().Arg.GetAConst() == nil {
		return errors.New("not a type name")
	}
	return nil
}

// checkStorageParameters makes sure params is a list of storage parameters, as in
// "WITH (params)".
func checkStorageParameters(params string) error {
	if err := scanExpr(params); err != nil {
		return err
	}
	res, err := pgtree.Parse("CREATE INDEX i ON t (c) WITH (" + params + ")")
	if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt.GetIndexStmt() == nil ||
		res.Stmts[0].Stmt.GetIndexStmt().WhereClause != nil || res.Stmts[0].Stmt.GetIndexStmt().TableSpace != "" {
		return errors.New("not a list of storage parameters (name = value, ...)")
	}
	return nil
}

// checkSequenceOptions makes sure opts are options of CREATE SEQUENCE.
func checkSequenceOptions(opts string) error {
	if err := scanExpr(opts); err != nil {
		return err
	}
	res, err := pgtree.Parse("CREATE SEQUENCE s " + opts)
	if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt.GetCreateSeqStmt() == nil {
		return errors.New("not options of CREATE SEQUENCE (e.g. START 1 INCREMENT 1)")
	}
	return nil
}

// parserMessage is the parser's message without its decoration.
func parserMessage(err error) string {
	return strings.TrimSpace(err.Error())
}

// checkExcludeElements makes sure elements are the elements of an exclusion constraint,
// as in "EXCLUDE USING gist (elements)".
func checkExcludeElements(elements string) error {
	if err := scanExpr(elements); err != nil {
		return err
	}
	res, err := pgtree.Parse("ALTER TABLE t ADD CONSTRAINT c EXCLUDE USING gist (" + elements + ")")
	if err != nil || len(res.Stmts) != 1 || len(res.Stmts[0].Stmt.GetAlterTableStmt().GetCmds()) != 1 {
		return errors.New("not the elements of an exclusion constraint (e.g. \"room WITH =, during WITH &&\")")
	}
	return nil
}
