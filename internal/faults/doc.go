// Package faults holds the fault tests of writebehind: each starts real
// processes and servers (flushers, writers, a Redis and a PostgreSQL of its
// own), causes a real fault (SIGKILL, SIGTERM, a stopped server, a Redis
// restart, bad data) and ends by checking that every key equals its last
// write and nothing was lost. It has no code of its own.
package faults
