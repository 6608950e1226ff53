package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 20ms until it holds, failing the test with what
// after timeout. Use it only where a real process must be waited on.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Commands builds cmd/flusher and cmd/writer once per test binary and
// returns their paths. Call RemoveCommands from TestMain to delete them.
func Commands(t testing.TB) (flusher, writer string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "wb-cmd-")
		if buildErr != nil {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator), "./cmd/flusher", "./cmd/writer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build commands: %v", buildErr)
	}
	return filepath.Join(buildDir, "flusher"), filepath.Join(buildDir, "writer")
}

// RemoveCommands deletes what Commands built.
func RemoveCommands() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := string(bytes.TrimSpace(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// Process is a command started by a test; it is killed when the test ends.
type Process struct {
	Cmd *exec.Cmd
	// Out collects stdout and stderr.
	Out  *SyncBuffer
	done chan struct{}
	err  error
}

// Start runs path with args and env (added to the test's environment).
func Start(t testing.TB, env []string, path string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(path, args...), Out: &SyncBuffer{}, done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s %v:\n%s", filepath.Base(path), args, p.Out.String())
		}
	})
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, failing the test on timeout.
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s; output:\n%s", timeout, p.Out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RedisServer is a redis-server of a test's own, with append-only
// persistence (fsync on every write) in a temporary directory, so it can be
// killed and restarted without losing an acknowledged write.
type RedisServer struct {
	Port int
	dir  string
	t    testing.TB
	proc *Process
	// args are more arguments of redis-server.
	args []string
}

// StartRedis starts a Redis server of the test's own; it skips the test if
// redis-server is not installed.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed: cannot run a Redis of the test's own")
	}
	return startRedis(t)
}

func startRedis(t testing.TB, args ...string) *RedisServer {
	s := &RedisServer{Port: FreePort(t), dir: t.TempDir(), t: t, args: args}
	s.Start()
	return s
}

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Start starts the server (again) on its port and data directory and waits
// until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.proc = Start(s.t, nil, "redis-server", append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--maxmemory-policy", "noeviction", "--auto-aof-rewrite-min-size", "1gb"}, s.args...)...)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer c.Close()
	WaitFor(s.t, 10*time.Second, "redis-server to answer", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// Client returns a client of the server, closed when the test ends.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Signal sends sig to the server: SIGSTOP and SIGCONT pause and resume it.
func (s *RedisServer) Signal(sig os.Signal) {
	s.t.Helper()
	s.proc.Signal(s.t, sig)
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *RedisServer) Kill() {
	s.t.Helper()
	s.proc.Signal(s.t, syscall.SIGKILL)
	s.proc.Wait(s.t, 10*time.Second)
}

// PostgresServer is a PostgreSQL cluster of a test's own, in a temporary
// directory, that the test can stop and start.
type PostgresServer struct {
	Port int
	bin  string
	dir  string
	t    testing.TB
}

// StartPostgres creates and starts a PostgreSQL cluster of the test's own;
// it skips the test if initdb and pg_ctl are not installed. As root the
// cluster runs as the postgres user, since PostgreSQL refuses to run as root.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin := pgBin()
	if bin == "" {
		t.Skip("initdb and pg_ctl are not installed: cannot run a PostgreSQL of the test's own")
	}
	parent, err := os.MkdirTemp("", "wb-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{Port: FreePort(t), bin: bin, dir: filepath.Join(parent, "data"), t: t}
	if out, err := s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(func() { _, _ = s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop") })
	return s
}

func pgBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p)
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	return ""
}

// run runs a PostgreSQL program, as the postgres user when the test is root.
func (s *PostgresServer) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user: %w", err)
		}
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	return cmd.CombinedOutput()
}

// URL is the server's postgres:// URL.
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// Start starts the server and waits until it accepts connections.
func (s *PostgresServer) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off", s.Port)
	if out, err := s.run("pg_ctl", "-D", s.dir, "-o", opts, "-l", filepath.Join(s.dir, "log"), "-w", "start"); err != nil {
		s.t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

// Stop stops the server (fast shutdown: sessions are disconnected) and
// waits until it is down.
func (s *PostgresServer) Stop() {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.dir, "-m", "fast", "-w", "stop"); err != nil {
		s.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}
