package migrate

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
)

// qi quotes an identifier, qualified when given several parts.
func qi(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// ql quotes a string literal for DDL, where parameters cannot be used.
func ql(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// shortName builds a Postgres object name (at most 63 bytes) that is unique for parts.
func shortName(prefix string, parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return prefix + hex.EncodeToString(h[:])[:16]
}

// checkExpr makes sure expr is one self-contained SQL expression: quotes balanced,
// parentheses balanced within it, no comment and no statement separator, and PostgreSQL's
// own parser reads it as one expression (see parseExpr). This keeps a migration file from
// injecting SQL outside the expression it is meant to carry.
func checkExpr(expr string) error {
	if err := scanExpr(expr); err != nil {
		return err
	}
	return parseExpr(expr)
}

// scanExpr is checkExpr's scan of the text: quotes, comments, parentheses, separators.
func scanExpr(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return errors.New("empty expression")
	}
	depth := 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '_' || isAlnum(c):
			// A word: '$' inside it (c$a$) is part of the name, not a dollar quote.
			j := i
			for j < len(expr) && isWordByte(expr[j]) {
				j++
			}
			i = j - 1
		case c == '\'' || c == '"':
			end, ok := skipQuoted(expr, i)
			if !ok {
				return errors.New("unterminated quoted string or identifier")
			}
			i = end - 1
		case c == '-' && i+1 < len(expr) && expr[i+1] == '-':
			return errors.New("comments (--) are not allowed in an expression")
		case c == '/' && i+1 < len(expr) && expr[i+1] == '*':
			return errors.New("comments (/* */) are not allowed in an expression")
		case c == '$':
			end, ok := skipQuoted(expr, i)
			if !ok {
				return errors.New("unterminated dollar-quoted string")
			}
			i = end - 1
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return errors.New("unbalanced parentheses: ')' closes more than the expression opened")
			}
		case c == ';':
			return errors.New("';' is not allowed in an expression")
		}
	}
	if depth != 0 {
		return errors.New("unbalanced parentheses: '(' is never closed")
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// renameIdent rewrites references to column from in expr as references to column to:
// unquoted words equal to from (ignoring case, when from is a lower-case name) and
// quoted identifiers equal to from. String literals and other identifiers are left alone.
// expr must have passed checkExpr.
func renameIdent(expr, from, to string) string {
	return renameIdents(expr, map[string]string{from: to})
}

// renameIdents is renameIdent for several columns at once (one pass: a rename never
// applies to the result of another).
func renameIdents(expr string, names map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '\'' || c == '$':
			j, _ := skipQuoted(expr, i)
			b.WriteString(expr[i:j])
			i = j
		case c == '"':
			j, _ := skipQuoted(expr, i)
			ident := strings.ReplaceAll(expr[i+1:j-1], `""`, `"`)
			if to, ok := names[ident]; ok {
				b.WriteString(qi(to))
			} else {
				b.WriteString(expr[i:j])
			}
			i = j
		case c == '_' || isAlnum(c):
			j := i
			for j < len(expr) && isWordByte(expr[j]) {
				j++
			}
			word := expr[i:j]
			lower := strings.ToLower(word)
			if to, ok := names[lower]; ok && (i == 0 || expr[i-1] != ':') {
				b.WriteString(qi(to))
			} else {
				b.WriteString(word)
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// skipQuoted returns the index just past the quoted string, escape string (E'...', where a
// backslash escapes the next character, quotes included), quoted identifier or
// dollar-quoted string starting at i, or just past a lone '$' (a parameter like $1). ok
// is false for an unterminated one (the index is then len(s)). It is the one tokenizer
// checkExpr and renameIdents share.
func skipQuoted(s string, i int) (end int, ok bool) {
	q := s[i]
	if q == '$' {
		j := i + 1
		for j < len(s) && (s[j] == '_' || isAlnum(s[j])) {
			j++
		}
		if j < len(s) && s[j] == '$' && (j == i+1 || !isDigit(s[i+1])) {
			tag := s[i : j+1]
			if e := strings.Index(s[j+1:], tag); e >= 0 {
				return j + 1 + e + len(tag), true
			}
			return len(s), false
		}
		return i + 1, true
	}
	escape := q == '\'' && i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') &&
		(i < 2 || !(isAlnum(s[i-2]) || s[i-2] == '_' || s[i-2] == '$'))
	for j := i + 1; j < len(s); j++ {
		if escape && s[j] == '\\' {
			j++
			continue
		}
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return len(s), false
}
