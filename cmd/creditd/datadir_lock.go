package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockFile is the file in the data dir that every creditd process opening
// that directory locks with flock(2). Two embedded servers on one
// JetStream store both acknowledge writes against the same fence and lose
// one of them at the next restart, and a rebuild under a running server
// replaces its read models: one writer at a time. The kernel drops the lock
// when the process exits, however it exits, so a stale file never blocks.
const lockFile = "creditd.lock"

// Lock modes.
const (
	lockExclusive = true
	lockShared    = false
)

// lockHolderWait is how long a refused process waits for the holder to
// have written its pid, between the holder's flock and its write.
const lockHolderWait = 200 * time.Millisecond

// lockDataDir takes the data dir's lock without waiting: exclusive for a
// process that writes the directory, shared for one that only reads it.
// When another process holds it, the error names that process's pid and
// command. The returned func releases the lock.
func lockDataDir(dataDir, command string, exclusive bool) (release func(), err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dataDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by %s; stop it first, or give this command another --data-dir", dataDir, lockHolder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder's pid, for the error of the next one refused. Shared
	// holders overwrite each other's; any one of them is a useful answer.
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), command)), 0)
	return func() { f.Close() }, nil
}

// lockHolder reads who holds the lock at path: "creditd serve (pid 42)".
func lockHolder(path string) string {
	deadline := time.Now().Add(lockHolderWait)
	for {
		b, _ := os.ReadFile(path)
		pid, command, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if _, err := strconv.Atoi(pid); err == nil {
			return fmt.Sprintf("creditd %s (pid %s)", command, pid)
		}
		if time.Now().After(deadline) {
			return "another process (pid unknown)"
		}
		time.Sleep(10 * time.Millisecond)
	}
}
