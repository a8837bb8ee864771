// Package pgserver starts and stops a throwaway PostgreSQL server in a temporary directory.
//
// It is what the test helper (internal/pgtest), `tandem demo` and `tandem prove` use when
// the user has no database of their own at hand. The server listens on 127.0.0.1 only, on a
// free port, trusts every local connection, and is tuned for speed over durability (fsync
// off): it is for data nobody needs to keep.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the bootstrap superuser of a server started by Start.
const Superuser = "postgres"

// Options tune Start. The zero value is a good default.
type Options struct {
	// BinDir is the directory holding initdb and postgres. Empty means: search PATH,
	// then `pg_config --bindir`, then /usr/lib/postgresql/*/bin (newest first).
	BinDir string
	// MaxConnections is the server's max_connections; 0 means 200.
	MaxConnections int
	// Settings are extra server settings passed as -c name=value.
	Settings map[string]string
	// StartTimeout bounds how long Start waits for the server to accept connections;
	// 0 means 60s.
	StartTimeout time.Duration
}

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
	// What Standby needs to make a server like this one.
	bin      string
	cred     *syscall.Credential
	settings map[string]string
	timeout  time.Duration
}

// Start creates a fresh data directory, runs initdb and starts postgres on 127.0.0.1.
// When the calling process runs as root (initdb refuses to), the server runs as the
// "postgres" OS user, or "nobody" when that user does not exist. The server is stopped
// with SIGQUIT if the calling process dies, so a crashed test leaves no server behind.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	s, err := newServer(bin, opts)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(s.dir)
		}
	}()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", s.data(), "-U", Superuser, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = s.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Standby makes a streaming standby of s and starts it: a base backup of s
// (pg_basebackup, which writes standby.signal and the primary's address) in a directory
// of its own, started on a free port with s's settings and opts.Settings on top, hot
// standby on (it takes read-only connections). It returns once the standby streams WAL
// from s. Stop it before s. opts.BinDir and opts.MaxConnections are ignored: a standby
// runs the primary's binaries, with at least its connections.
func (s *Server) Standby(ctx context.Context, opts Options) (*Server, error) {
	settings := map[string]string{}
	for k, v := range s.settings {
		settings[k] = v
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	sb, err := newServer(s.bin, Options{Settings: settings, StartTimeout: opts.StartTimeout})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(sb.dir)
		}
	}()
	basebackup, err := s.tool("pg_basebackup")
	if err != nil {
		return nil, err
	}
	backup := exec.CommandContext(ctx, basebackup,
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", Superuser, "-D", sb.data(),
		"--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync")
	backup.SysProcAttr = &syscall.SysProcAttr{Credential: sb.cred}
	backup.Dir = sb.dir
	if out, err := backup.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_basebackup of the server on port %d: %w\n%s", s.port, err, out)
	}
	if err := sb.launch(ctx); err != nil {
		return nil, fmt.Errorf("start the standby: %w", err)
	}
	ok = true
	if err := sb.waitStreaming(ctx); err != nil {
		sb.Stop()
		return nil, err
	}
	return sb, nil
}

// tool finds one of the server's client programs: beside postgres, or beside the file a
// symbolic link to postgres names (a PATH directory may link only initdb and postgres).
func (s *Server) tool(name string) (string, error) {
	dirs := []string{s.bin}
	if p, err := filepath.EvalSymlinks(filepath.Join(s.bin, "postgres")); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && !st.IsDir() {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("%s not found in %s; install PostgreSQL's client programs, e.g. `apt-get install -y postgresql-client`", name, strings.Join(dirs, " or "))
}

// newServer makes the temporary directory of a server to run from bin, and settles its
// settings; the data directory is left to initdb or pg_basebackup.
func newServer(bin string, opts Options) (*Server, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tandem-pg-")
	if err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("hand data directory to uid %d: %w", cred.Uid, err)
		}
	}
	maxConn := opts.MaxConnections
	if maxConn == 0 {
		maxConn = 200
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         strconv.Itoa(maxConn),
		"shared_buffers":          "128MB",
		"logging_collector":       "off",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	return &Server{dir: dir, bin: bin, cred: cred, settings: settings, timeout: timeout}, nil
}

// data is the server's data directory.
func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// launch starts postgres on the data directory, on a free port, and waits until it
// accepts connections.
func (s *Server) launch(ctx context.Context) error {
	// A free port can be taken between our probe and the server's bind; try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		args := []string{"-D", s.data(), "-p", strconv.Itoa(port)}
		keys := make([]string, 0, len(s.settings))
		for k := range s.settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "-c", k+"="+s.settings[k])
		}
		logPath := filepath.Join(s.dir, "postgres.log")
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open server log: %w", err)
		}
		cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
		cmd.Dir = s.dir
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("start postgres: %w", err)
		}
		logFile.Close()
		s.cmd, s.port, s.done = cmd, port, make(chan error, 1)
		go func() { s.done <- cmd.Wait() }()
		if err := s.waitReady(ctx, s.timeout); err != nil {
			lastErr = err
			s.kill()
			continue
		}
		return nil
	}
	return lastErr
}

// waitStreaming waits until a standby's WAL receiver streams from its primary.
func (s *Server) waitStreaming(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the standby: %w", err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(s.timeout); ; {
		var streaming bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')").Scan(&streaming); err != nil {
			return fmt.Errorf("ask the standby whether it streams: %w", err)
		}
		if streaming {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby did not stream from its primary within %s (log: %s)", s.timeout, filepath.Join(s.dir, "postgres.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Port is the TCP port the server listens on at 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the temporary directory holding the data directory and the server log.
func (s *Server) Dir() string { return s.dir }

// URL returns a connection URL for database db as the bootstrap superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.port, db)
}

// Stop shuts the server down (fast shutdown, then immediate after 10s) and removes its
// directory. It is safe to call more than once.
func (s *Server) Stop() error {
	if s == nil || s.cmd == nil {
		return nil
	}
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.kill()
		}
	}
	s.cmd = nil
	return os.RemoveAll(s.dir)
}

func (s *Server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres exited during start-up (%v):\n%s", werr, tail(string(log), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %s: %w", timeout, err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverCredential returns the OS identity to run the server as: nil (ourselves) unless we
// are root, because initdb and postgres refuse to run as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root, and neither a \"postgres\" nor a \"nobody\" OS user exists to run the server as")
}

// findBinDir locates a directory with both initdb and postgres.
func findBinDir(explicit string) (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if explicit != "" {
		if has(explicit) {
			return explicit, nil
		}
		return "", fmt.Errorf("no initdb and postgres in %s", explicit)
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH, via pg_config, or under /usr/lib/postgresql/*/bin; install them, e.g. `apt-get install -y postgresql`")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Installed reports whether PostgreSQL's server binaries are found (see Options.BinDir).
func Installed() bool {
	_, err := findBinDir("")
	return err == nil
}
