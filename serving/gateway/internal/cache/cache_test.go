package cache

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// redisServer starts a real redis-server on a free loopback port (skipped where none is installed).
func redisServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (scripts/setup_services.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatal("redis-server did not start")
	return ""
}

func TestAStoredAnswerIsFoundByALaterLookup(t *testing.T) {
	r := NewRedis(redisServer(t), time.Minute, time.Second)
	defer r.Close()
	ctx := context.Background()
	r.Set(ctx, "k", []byte("answer"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := r.Get(ctx, "k"); ok {
			if string(v) != "answer" {
				t.Fatalf("got %q", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the answer was never stored")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseStoresEveryQueuedAnswer(t *testing.T) {
	addr := redisServer(t)
	r := NewRedis(addr, time.Minute, time.Second)
	ctx := context.Background()
	const n = 1000 // more than one pipelined round trip
	for i := range n {
		r.Set(ctx, fmt.Sprint(i), []byte{byte(i)})
	}
	r.Close()
	if r.Dropped() != 0 {
		t.Fatalf("%d answers dropped below the backlog", r.Dropped())
	}
	check := NewRedis(addr, time.Minute, time.Second)
	defer check.Close()
	for i := range n {
		if v, ok := check.Get(ctx, fmt.Sprint(i)); !ok || v[0] != byte(i) {
			t.Fatalf("answer %d: %v %v", i, v, ok)
		}
	}
}

func TestSetAfterCloseIsIgnored(t *testing.T) {
	r := NewRedis(redisServer(t), time.Minute, time.Second)
	r.Close()
	r.Set(context.Background(), "k", []byte("late")) // must neither panic nor block
}

func TestWithRedisDownSetNeverWaitsAndLookupsMiss(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there
	r := NewRedis(addr, time.Minute, 200*time.Millisecond)
	defer r.Close()
	ctx := context.Background()
	started := time.Now()
	for i := range 2 * Backlog { // past the backlog: the overflow is dropped, not waited for
		r.Set(ctx, fmt.Sprint(i), []byte("x"))
	}
	if _, ok := r.Get(ctx, "0"); ok {
		t.Fatal("a lookup hit with Redis down")
	}
	if waited := time.Since(started); waited > 2*time.Second {
		t.Fatalf("Set and Get waited %v with Redis down", waited)
	}
	if r.State() != "down" {
		t.Fatalf("state %q with Redis down", r.State())
	}
}
