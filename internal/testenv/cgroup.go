package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// MemoryLimit is a memory cgroup of its own (v1 or v2) with a hard limit: a
// process in it that uses more is killed by the kernel, as a container's
// memory limit kills it.
type MemoryLimit struct {
	dir string
	v2  bool
}

// NewMemoryLimit makes a child of this process's memory cgroup limited to
// limit bytes, removed when the test ends. It skips the test where no
// cgroup can be made (not root, no memory controller).
func NewMemoryLimit(t testing.TB, limit int64) *MemoryLimit {
	t.Helper()
	base, v2, err := ownMemoryCgroup()
	if err != nil {
		t.Skipf("no memory cgroup to limit a process with: %v", err)
	}
	m := &MemoryLimit{dir: filepath.Join(base, Name("wbtest")), v2: v2}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(m.dir) })
	file, value := "memory.limit_in_bytes", strconv.FormatInt(limit, 10)
	if v2 {
		file = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(m.dir, file), []byte(value), 0o644); err != nil {
		t.Skipf("cannot limit a memory cgroup: %v", err)
	}
	if !v2 {
		// Swap would let the process outgrow the limit instead of being
		// killed; where the kernel counts swap, allow none.
		_ = os.WriteFile(filepath.Join(m.dir, "memory.memsw.limit_in_bytes"), []byte(value), 0o644)
	} else {
		_ = os.WriteFile(filepath.Join(m.dir, "memory.swap.max"), []byte("0"), 0o644)
	}
	return m
}

// Wrap returns the command line that runs path with args inside the
// cgroup: a shell moves itself in, then becomes the command, so the
// command's first allocation is already counted.
func (m *MemoryLimit) Wrap(path string, args ...string) (string, []string) {
	procs := filepath.Join(m.dir, "cgroup.procs")
	return "/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, procs, path}, args...)
}

// Peak returns the most memory the cgroup's processes used at once, in
// bytes, where the kernel tells it (0 otherwise).
func (m *MemoryLimit) Peak() int64 {
	file := "memory.max_usage_in_bytes"
	if m.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(m.dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// ResetPeak starts Peak anew, where the kernel allows it.
func (m *MemoryLimit) ResetPeak() {
	file := "memory.max_usage_in_bytes"
	if m.v2 {
		file = "memory.peak"
	}
	_ = os.WriteFile(filepath.Join(m.dir, file), []byte("0"), 0o644)
}

// ownMemoryCgroup returns the directory of this process's memory cgroup.
func ownMemoryCgroup() (dir string, v2 bool, err error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var unified string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2]), false, nil
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified != "" {
		if c, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(c), "memory") {
			return filepath.Join("/sys/fs/cgroup", unified), true, nil
		}
	}
	return "", false, fmt.Errorf("no memory controller in /proc/self/cgroup")
}
