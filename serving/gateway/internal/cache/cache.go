// Package cache keeps answers in Redis. The key is a hash of the image bytes, the request's parameters and the
// model's version, so a new model never serves an old answer. Redis is optional at run time: when it is down,
// lookups miss at once (a short breaker avoids paying a timeout on every request) and the server goes on.
//
// Answers are stored off the request path: Set queues the answer and one writer sends whatever has queued in one
// pipelined round trip, so a request pays for its lookup only (storing cost a round trip and about a tenth of a
// millisecond of CPU a request under load). A stored answer is visible to a repeat request a round trip later.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is what the server needs of an answer cache.
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, value []byte)
	State() string // up, down or disabled (State asks the server: not for every request)
	Enabled() bool // configured at all
}

// Key is the cache key of an answer.
func Key(model string, image []byte, params string) string {
	h := sha256.New()
	h.Write(image)
	return fmt.Sprintf("yoloforge:%s:%s:%s", model, hex.EncodeToString(h.Sum(nil)), params)
}

// Redis is a Cache on go-redis.
type Redis struct {
	client    *redis.Client
	ttl       time.Duration
	timeout   time.Duration
	downUntil atomic.Int64 // unix nanoseconds; lookups are skipped until then after a failure
	up        atomic.Bool
	OnError   func(op string, err error)

	mu      sync.RWMutex // Set holds it to read; Close to write, so no answer is queued once pending is closed
	closed  bool
	pending chan entry
	dropped atomic.Int64
	written chan struct{} // closed when the writer has sent what was queued before Close
}

type entry struct {
	key   string
	value []byte
}

// Backlog is how many answers may wait to be stored; beyond it an answer is not cached (and counted), never
// waited for.
const Backlog = 4096

// maxPipeline bounds one round trip's commands.
const maxPipeline = 256

// breakerPause is how long the cache is skipped after an error before Redis is tried again.
const breakerPause = time.Second

// NewRedis connects lazily: a Redis that is down at start is picked up when it comes back.
func NewRedis(addr string, ttl, timeout time.Duration) *Redis {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		PoolTimeout: timeout, MaxRetries: 0, ContextTimeoutEnabled: true,
	})
	r := &Redis{client: c, ttl: ttl, timeout: timeout, pending: make(chan entry, Backlog), written: make(chan struct{})}
	r.up.Store(true)
	go r.write()
	return r
}

func (r *Redis) open() bool { return time.Now().UnixNano() >= r.downUntil.Load() }

func (r *Redis) fail(op string, err error) {
	r.downUntil.Store(time.Now().Add(breakerPause).UnixNano())
	if r.up.Swap(false) && r.OnError != nil {
		r.OnError(op, err)
	}
}

// Get returns a cached answer; any failure is a miss.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool) {
	if !r.open() {
		return nil, false
	}
	v, err := r.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		r.up.Store(true)
		return nil, false
	}
	if err != nil {
		r.fail("get", err)
		return nil, false
	}
	r.up.Store(true)
	return v, true
}

// Set queues an answer to be stored; it never waits. Failures are logged once and otherwise ignored.
func (r *Redis) Set(_ context.Context, key string, value []byte) {
	if !r.open() {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return
	}
	select {
	case r.pending <- entry{key, value}:
	default:
		r.dropped.Add(1)
	}
}

// Dropped counts answers not stored because the backlog was full.
func (r *Redis) Dropped() int64 { return r.dropped.Load() }

// write stores queued answers until Close: each round trip takes what has queued meanwhile.
func (r *Redis) write() {
	defer close(r.written)
	batch := make([]entry, 0, maxPipeline)
	for first := range r.pending {
		batch = append(batch[:0], first)
	gather:
		for len(batch) < maxPipeline {
			select {
			case e, ok := <-r.pending:
				if !ok {
					break gather
				}
				batch = append(batch, e)
			default:
				break gather
			}
		}
		r.store(batch)
	}
}

func (r *Redis) store(batch []entry) {
	if !r.open() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range batch {
			p.Set(ctx, e.key, e.value, r.ttl)
		}
		return nil
	})
	if err != nil {
		r.fail("set", err)
		return
	}
	r.up.Store(true)
}

// State pings Redis when the breaker allows it.
func (r *Redis) State() string {
	if r.open() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := r.client.Ping(ctx).Err(); err != nil {
			r.fail("ping", err)
		} else {
			r.up.Store(true)
		}
	}
	if r.up.Load() && r.open() {
		return "up"
	}
	return "down"
}

// Enabled is true: Redis is configured.
func (r *Redis) Enabled() bool { return true }

// Close stores what is queued (each round trip bounded by the timeout), then closes the connections.
func (r *Redis) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.pending)
	}
	r.mu.Unlock()
	<-r.written
	return r.client.Close()
}

// Disabled is the Cache when redis.enabled is false.
type Disabled struct{}

// Get always misses.
func (Disabled) Get(context.Context, string) ([]byte, bool) { return nil, false }

// Set does nothing.
func (Disabled) Set(context.Context, string, []byte) {}

// State is disabled.
func (Disabled) State() string { return "disabled" }

// Enabled is false.
func (Disabled) Enabled() bool { return false }
