package lint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config holds the settings a team keeps in tandem.yaml (under "lint:") or
// .tandem-lint.yaml.
type Config struct {
	// PGVersion is the target server's major version; the --pg-version flag overrides it.
	PGVersion int `yaml:"pg-version" json:"pg_version,omitempty"`
	// Disable lists rule IDs that never report.
	Disable []string `yaml:"disable" json:"disable,omitempty"`
	// Severity overrides a rule's severity: "off", "warning" or "error".
	Severity map[string]string `yaml:"severity" json:"severity,omitempty"`
	// TimeoutsSetByRunner says the migration runner sets lock_timeout and
	// statement_timeout itself, so files need not.
	TimeoutsSetByRunner bool `yaml:"timeouts-set-by-runner" json:"timeouts_set_by_runner,omitempty"`
	// Transaction is how the runner executes a file without a directive: "file" (one
	// transaction per file, the default) or "none" (statement by statement).
	Transaction string `yaml:"transaction" json:"transaction,omitempty"`
	// NoForeignIgnores turns off squawk's and atlas's suppression comments
	// (-- squawk-ignore, -- atlas:nolint), which are otherwise honoured with their rule
	// names mapped to ours.
	NoForeignIgnores bool `yaml:"no-foreign-ignores" json:"no_foreign_ignores,omitempty"`
}

// ConfigFileNames are the names FindConfig looks for, in order.
var ConfigFileNames = []string{".tandem-lint.yaml", ".tandem-lint.yml", "tandem.yaml", "tandem.yml"}

// validate checks rule IDs and values.
func (c *Config) validate() error {
	var errs []error
	for _, id := range c.Disable {
		if _, ok := LookupRule(id); !ok {
			errs = append(errs, fmt.Errorf("disable: unknown rule %q", id))
		}
	}
	ids := make([]string, 0, len(c.Severity))
	for id := range c.Severity {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, ok := LookupRule(id); !ok {
			errs = append(errs, fmt.Errorf("severity: unknown rule %q", id))
		}
		if _, err := ParseSeverity(c.Severity[id]); err != nil {
			errs = append(errs, fmt.Errorf("severity of %s: %w", id, err))
		}
	}
	switch c.Transaction {
	case "", "file", "none":
	default:
		errs = append(errs, fmt.Errorf("transaction: %q is neither \"file\" nor \"none\"", c.Transaction))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lint config: %w", err)
	}
	return nil
}

// severityFor returns the configured severity of r.
func (c *Config) severityFor(r *Rule) Severity {
	for _, id := range c.Disable {
		if id == r.ID {
			return SeverityOff
		}
	}
	if s, ok := c.Severity[r.ID]; ok {
		if v, err := ParseSeverity(s); err == nil {
			return v
		}
	}
	return r.Severity
}

// ParseConfig reads a configuration document. In a shared tandem.yaml (shared true) the
// settings live under the top-level "lint" key and other keys are ignored; otherwise (a
// .tandem-lint.yaml) the whole document is the lint configuration, optionally also under
// "lint".
func ParseConfig(data []byte, shared bool) (Config, error) {
	var cfg Config
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return cfg, fmt.Errorf("parse lint config: %w", err)
	}
	if n, ok := top["lint"]; ok {
		if err := n.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("parse lint config: %w", err)
		}
	} else if !shared && len(top) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("parse lint config: %w", err)
		}
	}
	for i, id := range cfg.Disable {
		cfg.Disable[i] = strings.TrimSpace(id)
	}
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// LoadConfig reads the configuration file at path. Files named tandem.yaml (or .yml) are
// shared with other commands and read from their "lint" key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read lint config: %w", err)
	}
	base := filepath.Base(path)
	cfg, err := ParseConfig(data, base == "tandem.yaml" || base == "tandem.yml")
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// FindConfig returns the first of ConfigFileNames that exists in dir, or "".
func FindConfig(dir string) string {
	for _, n := range ConfigFileNames {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}
